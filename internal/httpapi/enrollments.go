package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

// dpsServiceRoutes are the DPS service API endpoints (dps-protocol.md §8.2).
func (a *API) dpsServiceRoutes() []route {
	return []route{
		{http.MethodPost, []string{"enrollments", "query"}, dpsPolicy, access.EnrollmentRead, queryEnrollments},
		{http.MethodPost, []string{"enrollments"}, dpsPolicy, access.EnrollmentWrite, bulkEnrollments},
		{http.MethodGet, []string{"enrollments", "*"}, dpsPolicy, access.EnrollmentRead, getEnrollment},
		{http.MethodPut, []string{"enrollments", "*"}, dpsPolicy, access.EnrollmentWrite, putEnrollment},
		{http.MethodDelete, []string{"enrollments", "*"}, dpsPolicy, access.EnrollmentWrite, deleteEnrollment},
		{http.MethodPost, []string{"enrollments", "*", "attestationmechanism"}, dpsPolicy, access.EnrollmentRead, enrollmentAttestation},

		{http.MethodPost, []string{"enrollmentgroups", "query"}, dpsPolicy, access.EnrollmentRead, queryGroups},
		{http.MethodPost, []string{"enrollmentgroups"}, dpsPolicy, access.EnrollmentWrite, bulkGroups},
		{http.MethodGet, []string{"enrollmentgroups", "*"}, dpsPolicy, access.EnrollmentRead, getGroup},
		{http.MethodPut, []string{"enrollmentgroups", "*"}, dpsPolicy, access.EnrollmentWrite, putGroup},
		{http.MethodDelete, []string{"enrollmentgroups", "*"}, dpsPolicy, access.EnrollmentWrite, deleteGroup},
		{http.MethodPost, []string{"enrollmentgroups", "*", "attestationmechanism"}, dpsPolicy, access.EnrollmentRead, groupAttestation},

		{http.MethodPost, []string{"registrations", "*", "query"}, dpsPolicy, access.RegistrationStatusRead, queryRegistrations},
		{http.MethodGet, []string{"registrations", "*"}, dpsPolicy, access.RegistrationStatusRead, getRegistration},
		{http.MethodDelete, []string{"registrations", "*"}, dpsPolicy, access.RegistrationStatusWrite, deleteRegistration},
	}
}

func getEnrollment(c *call) error {
	e, err := c.api.dps.Enrollment(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromEnrollment(e, wire.MaskKeys))
	return nil
}

func putEnrollment(c *call) error {
	var body wire.IndividualEnrollment
	if err := c.decode(&body); err != nil {
		return err
	}
	if err := sameID("registrationId", body.RegistrationID, c.params[0]); err != nil {
		return err
	}
	body.RegistrationID = c.params[0]
	e, err := c.api.dps.PutEnrollment(c.ctx(), body.ToEnrollment(), c.r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromEnrollment(e, wire.ShowKeys))
	return nil
}

func deleteEnrollment(c *call) error {
	if err := c.api.dps.DeleteEnrollment(c.ctx(), c.params[0], c.r.Header.Get("If-Match")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func enrollmentAttestation(c *call) error {
	e, err := c.api.dps.Enrollment(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromAttestation(e.Attestation, wire.ShowKeys))
	return nil
}

func queryEnrollments(c *call) error {
	q, page, err := c.querySpec()
	if err != nil {
		return err
	}
	items, next, err := c.api.dps.QueryEnrollments(c.ctx(), q, page)
	if err != nil {
		return err
	}
	out := make([]wire.IndividualEnrollment, len(items))
	for i, e := range items {
		out[i] = wire.FromEnrollment(e, wire.MaskKeys)
	}
	c.writePage("enrollment", next, page, out)
	return nil
}

func bulkEnrollments(c *call) error {
	var body wire.BulkEnrollmentOperation
	if err := c.decode(&body); err != nil {
		return err
	}
	mode, err := dps.ParseBulkMode(body.Mode)
	if err != nil {
		return err
	}
	items := make([]dps.Enrollment, len(body.Enrollments))
	for i := range body.Enrollments {
		items[i] = body.Enrollments[i].ToEnrollment()
	}
	errs, err := c.api.dps.BulkEnrollments(c.ctx(), mode, items)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromBulkErrors(errs, false))
	return nil
}

func getGroup(c *call) error {
	g, err := c.api.dps.Group(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromGroup(g, wire.MaskKeys))
	return nil
}

func putGroup(c *call) error {
	var body wire.EnrollmentGroup
	if err := c.decode(&body); err != nil {
		return err
	}
	if err := sameID("enrollmentGroupId", body.EnrollmentGroupID, c.params[0]); err != nil {
		return err
	}
	body.EnrollmentGroupID = c.params[0]
	g, err := c.api.dps.PutGroup(c.ctx(), body.ToGroup(), c.r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromGroup(g, wire.ShowKeys))
	return nil
}

func deleteGroup(c *call) error {
	if err := c.api.dps.DeleteGroup(c.ctx(), c.params[0], c.r.Header.Get("If-Match")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func groupAttestation(c *call) error {
	g, err := c.api.dps.Group(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromAttestation(g.Attestation, wire.ShowKeys))
	return nil
}

func queryGroups(c *call) error {
	q, page, err := c.querySpec()
	if err != nil {
		return err
	}
	items, next, err := c.api.dps.QueryGroups(c.ctx(), q, page)
	if err != nil {
		return err
	}
	out := make([]wire.EnrollmentGroup, len(items))
	for i, g := range items {
		out[i] = wire.FromGroup(g, wire.MaskKeys)
	}
	c.writePage("enrollmentGroup", next, page, out)
	return nil
}

func bulkGroups(c *call) error {
	var body wire.BulkEnrollmentGroupOperation
	if err := c.decode(&body); err != nil {
		return err
	}
	mode, err := dps.ParseBulkMode(body.Mode)
	if err != nil {
		return err
	}
	items := make([]dps.Group, len(body.EnrollmentGroups))
	for i := range body.EnrollmentGroups {
		items[i] = body.EnrollmentGroups[i].ToGroup()
	}
	errs, err := c.api.dps.BulkGroups(c.ctx(), mode, items)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromBulkErrors(errs, true))
	return nil
}

func getRegistration(c *call) error {
	r, err := c.api.dps.Registration(c.ctx(), c.params[0])
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, wire.FromRegistration(r))
	return nil
}

func deleteRegistration(c *call) error {
	if err := c.api.dps.DeleteRegistration(c.ctx(), c.params[0], c.r.Header.Get("If-Match")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func queryRegistrations(c *call) error {
	q, page, err := c.querySpec()
	if err != nil {
		return err
	}
	items, next, err := c.api.dps.GroupRegistrations(c.ctx(), c.params[0], q, page)
	if err != nil {
		return err
	}
	out := make([]wire.DeviceRegistrationState, len(items))
	for i, r := range items {
		out[i] = wire.FromRegistration(r)
	}
	c.writePage("deviceRegistration", next, page, out)
	return nil
}

// querySpec reads a QuerySpecification (optional for registration queries:
// the spec defines no body there) and the paging headers.
func (c *call) querySpec() (string, dps.Page, error) {
	page := dps.Page{Continuation: c.r.Header.Get("x-ms-continuation")}
	if v := c.r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", page, fault.New(fault.Invalid, "x-ms-max-item-count %q must be a positive integer", v)
		}
		page.Size = n
	}
	b, err := c.body()
	if err != nil {
		return "", page, err
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", page, nil
	}
	var spec wire.QuerySpecification
	if err := wire.Decode(b, &spec); err != nil {
		return "", page, err
	}
	return spec.Query, page, nil
}

// writePage answers a query page. x-ms-continuation is sent only when more
// pages follow: the SDKs treat its presence, even empty, as "more".
func (c *call) writePage(itemType, next string, page dps.Page, items any) {
	h := c.w.Header()
	h.Set("x-ms-item-type", itemType)
	if page.Size > 0 {
		h.Set("x-ms-max-item-count", strconv.Itoa(page.Size))
	}
	if next != "" {
		h.Set("x-ms-continuation", next)
	}
	writeJSON(c.w, http.StatusOK, items)
}

// sameID checks that an ID in the body, when present, names the same record
// as the path (IDs are case-insensitive).
func sameID(field, body, path string) error {
	if body != "" && !dps.SameID(body, path) {
		return fault.New(fault.Invalid, "%s %q in the body does not match %q in the path", field, body, path)
	}
	return nil
}

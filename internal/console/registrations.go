package console

import (
	"context"
	"net/http"
	"net/url"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
)

// registrationPageSize is how many registration records a group's page
// lists at a time.
const registrationPageSize = 100

// registrationsView is the registration records on a details page.
type registrationsView struct {
	Allowed bool // the policy has RegistrationStatusRead
	Records []registrationRow
	NextURL string // the next page of a group's records
}

// registrationRow is one record and the address its delete form posts to.
type registrationRow struct {
	dps.Registration
	DeletePath string
}

// enrollmentRegistrations is the record of an individual enrollment's
// device: the one with its registration ID that no group made.
func (c *Console) enrollmentRegistrations(ctx context.Context, s *session, e dps.Enrollment) (registrationsView, error) {
	if !s.can(access.RegistrationStatusRead) {
		return registrationsView{}, nil
	}
	v := registrationsView{Allowed: true}
	reg, err := c.dps.Registration(ctx, e.RegistrationID)
	switch {
	case fault.Is(err, fault.NotFound):
		return v, nil
	case err != nil:
		return v, err
	}
	if reg.GroupID == "" {
		v.Records = []registrationRow{{Registration: reg, DeletePath: enrollmentPath(e.RegistrationID) + "/registration/delete"}}
	}
	return v, nil
}

// groupRegistrations is one page of a group's records; ?after= names it.
func (c *Console) groupRegistrations(r *http.Request, s *session, g dps.Group) (registrationsView, error) {
	if !s.can(access.RegistrationStatusRead) {
		return registrationsView{}, nil
	}
	after := r.URL.Query().Get("after")
	recs, next, err := c.dps.GroupRegistrations(r.Context(), g.ID, "", dps.Page{Size: registrationPageSize, Continuation: after})
	if err != nil {
		return registrationsView{}, err
	}
	v := registrationsView{Allowed: true}
	for _, reg := range recs {
		v.Records = append(v.Records, registrationRow{Registration: reg,
			DeletePath: groupPath(g.ID) + "/registrations/" + url.PathEscape(reg.RegistrationID) + "/delete"})
	}
	if next != "" {
		v.NextURL = groupPath(g.ID) + "?" + url.Values{"after": {next}}.Encode()
	}
	return v, nil
}

// deleteEnrollmentRegistration deletes the record of an individual
// enrollment's device, so its next registration is a new assignment.
func (c *Console) deleteEnrollmentRegistration(r *http.Request, s *session) (response, error) {
	if err := s.require(access.RegistrationStatusWrite); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	reg, err := c.dps.Registration(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if reg.GroupID != "" {
		return nil, fault.New(fault.NotFound, "The registration record %q belongs to an enrollment group, not to this enrollment.", id)
	}
	if err := c.dps.DeleteRegistration(r.Context(), reg.RegistrationID, ""); err != nil {
		return nil, err
	}
	c.log.Info("console: registration record deleted", "registrationId", reg.RegistrationID, "policy", s.policy.Name)
	return redirect(enrollmentPath(id)), nil
}

// deleteGroupRegistration deletes the record of one of a group's devices.
func (c *Console) deleteGroupRegistration(r *http.Request, s *session) (response, error) {
	if err := s.require(access.RegistrationStatusWrite); err != nil {
		return nil, err
	}
	groupID, id := r.PathValue("id"), r.PathValue("rid")
	reg, err := c.dps.Registration(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if !dps.SameID(reg.GroupID, groupID) {
		return nil, fault.New(fault.NotFound, "The registration record %q does not belong to the enrollment group %q.", id, groupID)
	}
	if err := c.dps.DeleteRegistration(r.Context(), reg.RegistrationID, ""); err != nil {
		return nil, err
	}
	c.log.Info("console: registration record deleted", "registrationId", reg.RegistrationID, "groupId", reg.GroupID, "policy", s.policy.Name)
	return redirect(groupPath(groupID)), nil
}

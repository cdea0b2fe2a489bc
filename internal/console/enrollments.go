package console

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
)

// pageSize is how many enrollments or groups a list page shows.
const pageSize = 20

// maxPage bounds the page number a URL may ask for.
const maxPage = 1 << 20

// listView is the "Manage enrollments" page: one tab, filtered and paged.
type listView struct {
	Tab         string // "individual" or "groups"
	Filter      string
	FilterError string
	Page        int
	PrevURL     string
	NextURL     string
	Enrollments []dps.Enrollment
	Groups      []dps.Group
	Notice      string
}

// enrollmentList shows one page of individual enrollments or groups.
// The filter is a part of the ID (case-insensitive), or a query condition
// when it starts with WHERE or SELECT.
func (c *Console) enrollmentList(r *http.Request, s *session) (response, error) {
	if err := s.requireRead(access.EnrollmentRead); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	v := listView{Tab: "individual", Filter: strings.TrimSpace(q.Get("filter")), Page: 1}
	if q.Get("tab") == "groups" {
		v.Tab = "groups"
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 {
		v.Page = min(n, maxPage)
	}
	if id := q.Get("deleted"); id != "" && dps.ValidateID("id", id) == nil {
		noun := "Individual enrollment"
		if v.Tab == "groups" {
			noun = "Enrollment group"
		}
		v.Notice = noun + " " + strconv.Quote(id) + " was deleted."
	}
	query, keep := listFilter(v.Filter, v.Tab)
	var more bool
	var err error
	if v.Tab == "groups" {
		v.Groups, more, err = pageOf(r.Context(), c.dps.QueryGroups, query, func(g *dps.Group) bool { return keep(g.ID) }, v.Page)
	} else {
		v.Enrollments, more, err = pageOf(r.Context(), c.dps.QueryEnrollments, query, func(e *dps.Enrollment) bool { return keep(e.RegistrationID) }, v.Page)
	}
	p := c.view(s, "enrollments", "Manage enrollments", v)
	if err != nil {
		if fault.KindOf(err) == fault.Internal {
			return nil, err
		}
		v.FilterError = "The filter is not a condition this list understands: " + sentence(fault.MessageOf(err))
		p.Data, p.status = v, status(err)
		return p, nil
	}
	link := func(n int) string {
		u := url.Values{"tab": {v.Tab}, "page": {strconv.Itoa(n)}}
		if v.Filter != "" {
			u.Set("filter", v.Filter)
		}
		return Prefix + "/enrollments?" + u.Encode()
	}
	if v.Page > 1 {
		v.PrevURL = link(v.Page - 1)
	}
	if more {
		v.NextURL = link(v.Page + 1)
	}
	p.Data = v
	return p, nil
}

// listFilter turns the filter box into a query for the domain and a test
// of IDs: a condition when the text starts with SELECT or WHERE, else a
// case-insensitive part of the ID.
func listFilter(filter, tab string) (query string, keep func(id string) bool) {
	all := func(string) bool { return true }
	switch {
	case filter == "":
		return "", all
	case hasPrefixFold(filter, "select "):
		return filter, all
	case hasPrefixFold(filter, "where "):
		from := "enrollments"
		if tab == "groups" {
			from = "enrollmentGroups"
		}
		return "SELECT * FROM " + from + " " + filter, all
	}
	part := strings.ToLower(filter)
	return "", func(id string) bool { return strings.Contains(strings.ToLower(id), part) }
}

// pageOf returns page n (from 1) of the records query selects that keep
// accepts, and whether more follow.
func pageOf[T any](ctx context.Context, query func(context.Context, string, dps.Page) ([]T, string, error), q string, keep func(*T) bool, n int) ([]T, bool, error) {
	skip := (n - 1) * pageSize
	var out []T
	cont := ""
	for {
		batch, next, err := query(ctx, q, dps.Page{Size: dps.MaxPageSize, Continuation: cont})
		if err != nil {
			return nil, false, err
		}
		for i := range batch {
			switch {
			case !keep(&batch[i]):
			case skip > 0:
				skip--
			case len(out) == pageSize:
				return out, true, nil
			default:
				out = append(out, batch[i])
			}
		}
		if next == "" {
			return out, false, nil
		}
		cont = next
	}
}

// count returns how many records query lists.
func count[T any](ctx context.Context, query func(context.Context, string, dps.Page) ([]T, string, error)) (int, error) {
	n, cont := 0, ""
	for {
		batch, next, err := query(ctx, "", dps.Page{Size: dps.MaxPageSize, Continuation: cont})
		if err != nil {
			return 0, err
		}
		n += len(batch)
		if next == "" {
			return n, nil
		}
		cont = next
	}
}

func (c *Console) newEnrollmentPage(_ *http.Request, s *session) (response, error) {
	if err := s.requireRead(access.EnrollmentWrite); err != nil {
		return nil, err
	}
	return c.view(s, "enrollments", "Add individual enrollment", newEnrollmentForm(false)), nil
}

// createEnrollment saves a new individual enrollment, or shows the form
// again with its problems and saves nothing.
func (c *Console) createEnrollment(r *http.Request, s *session) (response, error) {
	if err := s.require(access.EnrollmentWrite); err != nil {
		return nil, err
	}
	f := readEnrollmentForm(r, false)
	settings, ok := f.settings()
	if !ok {
		return c.formAgain(s, f, fault.New(fault.Invalid, "invalid form")), nil
	}
	e, err := c.dps.CreateEnrollment(r.Context(), dps.Enrollment{RegistrationID: f.ID, DeviceID: f.DeviceID, Settings: settings})
	if err != nil {
		return c.domainProblem(s, f, err)
	}
	c.log.Info("console: enrollment created", "registrationId", e.RegistrationID, "policy", s.policy.Name)
	return redirect(enrollmentPath(e.RegistrationID)), nil
}

// domainProblem shows the form again with what the domain refused, or
// fails the request when the store did.
func (c *Console) domainProblem(s *session, f *enrollmentForm, err error) (response, error) {
	switch fault.KindOf(err) {
	case fault.Internal, fault.Unavailable, fault.Timeout:
		return nil, err
	case fault.Conflict:
		if f.Group {
			f.Errors.ID = "An enrollment group with this name already exists."
		} else {
			f.Errors.ID = "An individual enrollment with this registration ID already exists."
		}
	default:
		f.Errors.Form = sentence(fault.MessageOf(err))
	}
	return c.formAgain(s, f, err), nil
}

func (c *Console) formAgain(s *session, f *enrollmentForm, err error) *page {
	title := "Add individual enrollment"
	if f.Group {
		title = "Add enrollment group"
	}
	p := c.view(s, "enrollments", title, f)
	p.status = status(err)
	return p
}

// enrollmentView is an individual enrollment's details page.
type enrollmentView struct {
	Enrollment    dps.Enrollment
	Mechanism     string
	Keys          []keyView
	InitialTwin   string
	Registrations registrationsView
}

func (c *Console) enrollmentPage(r *http.Request, s *session) (response, error) {
	if err := s.requireRead(access.EnrollmentRead); err != nil {
		return nil, err
	}
	e, err := c.dps.Enrollment(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	regs, err := c.enrollmentRegistrations(r.Context(), s, e)
	if err != nil {
		return nil, err
	}
	return c.view(s, "enrollments", "Individual enrollment "+e.RegistrationID, enrollmentView{
		Enrollment: e, Mechanism: mechanismLabel(e.Attestation.Type), Keys: keysOf(e.Attestation),
		InitialTwin: twinJSON(e.InitialTwin), Registrations: regs,
	}), nil
}

func (c *Console) deleteEnrollment(r *http.Request, s *session) (response, error) {
	if err := s.require(access.EnrollmentWrite); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if err := c.dps.DeleteEnrollment(r.Context(), id, ""); err != nil {
		return nil, err
	}
	c.log.Info("console: enrollment deleted", "registrationId", id, "policy", s.policy.Name)
	return redirect(Prefix + "/enrollments?" + url.Values{"tab": {"individual"}, "deleted": {id}}.Encode()), nil
}

package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

func (c *Console) newGroupPage(_ *http.Request, s *session) (response, error) {
	if err := s.requireRead(access.EnrollmentWrite); err != nil {
		return nil, err
	}
	return c.view(s, "enrollments", "Add enrollment group", newEnrollmentForm(true)), nil
}

// createGroup saves a new enrollment group, or shows the form again with
// its problems and saves nothing.
func (c *Console) createGroup(r *http.Request, s *session) (response, error) {
	if err := s.require(access.EnrollmentWrite); err != nil {
		return nil, err
	}
	f := readEnrollmentForm(r, true)
	settings, ok := f.settings()
	if !ok {
		return c.formAgain(s, f, fault.New(fault.Invalid, "invalid form")), nil
	}
	g, err := c.dps.CreateGroup(r.Context(), dps.Group{ID: f.ID, Settings: settings})
	if err != nil {
		return c.domainProblem(s, f, err)
	}
	c.log.Info("console: enrollment group created", "groupId", g.ID, "policy", s.policy.Name)
	return redirect(groupPath(g.ID)), nil
}

// groupView is an enrollment group's details page, with the "derive a
// device key" box.
type groupView struct {
	Group         dps.Group
	Mechanism     string
	Keys          []keyView
	InitialTwin   string
	Registrations registrationsView
	DeriveID      string // the registration ID typed into the box
	Derived       string // its key, computed on the server
	DeriveError   string
}

func (c *Console) groupPage(r *http.Request, s *session) (response, error) {
	v, err := c.groupView(r, s)
	if err != nil {
		return nil, err
	}
	return c.view(s, "enrollments", "Enrollment group "+v.Group.ID, v), nil
}

func (c *Console) groupView(r *http.Request, s *session) (groupView, error) {
	if err := s.requireRead(access.EnrollmentRead); err != nil {
		return groupView{}, err
	}
	g, err := c.dps.Group(r.Context(), r.PathValue("id"))
	if err != nil {
		return groupView{}, err
	}
	regs, err := c.groupRegistrations(r, s, g)
	if err != nil {
		return groupView{}, err
	}
	return groupView{Group: g, Mechanism: mechanismLabel(g.Attestation.Type), Keys: keysOf(g.Attestation),
		InitialTwin: twinJSON(g.InitialTwin), Registrations: regs}, nil
}

// deriveKey computes the key a device of the group signs with, from the
// group's primary key, and shows it on the group's page. Reading the key
// needs EnrollmentRead, as reading the group's attestation does.
func (c *Console) deriveKey(r *http.Request, s *session) (response, error) {
	v, err := c.groupView(r, s)
	if err != nil {
		return nil, err
	}
	v.DeriveID = strings.TrimSpace(r.PostFormValue("registrationId"))
	p := c.view(s, "enrollments", "Enrollment group "+v.Group.ID, v)
	if err := dps.ValidateID("The registration ID", v.DeriveID); err != nil {
		v.DeriveError, p.status = sentence(fault.MessageOf(err)), status(err)
		p.Data = v
		return p, nil
	}
	if v.Group.Attestation.Type != dps.SymmetricKey {
		return nil, fault.New(fault.Invalid, "Device keys can only be derived for a symmetric key group.")
	}
	if v.Derived, err = sas.DeriveDeviceKey(v.Group.Attestation.PrimaryKey, v.DeriveID); err != nil {
		return nil, err
	}
	p.Data = v
	return p, nil
}

func (c *Console) deleteGroup(r *http.Request, s *session) (response, error) {
	if err := s.require(access.EnrollmentWrite); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if err := c.dps.DeleteGroup(r.Context(), id, ""); err != nil {
		return nil, err
	}
	c.log.Info("console: enrollment group deleted", "groupId", id, "policy", s.policy.Name)
	return redirect(Prefix + "/enrollments?" + url.Values{"tab": {"groups"}, "deleted": {id}}.Encode()), nil
}

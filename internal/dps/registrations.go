package dps

import (
	"context"
	"strings"

	"github.com/usher-iot/usher/internal/fault"
)

// Registration returns a device's registration record.
func (s *Service) Registration(ctx context.Context, id string) (Registration, error) {
	r, err := s.store.Registration(ctx, id)
	if fault.Is(err, fault.NotFound) {
		return r, fault.New(fault.NotFound, "registration %q does not exist", id)
	}
	return r, err
}

// DeleteRegistration deletes a registration record, so the device's next
// registration is an initial assignment. The hub device stays.
func (s *Service) DeleteRegistration(ctx context.Context, id, ifMatch string) error {
	want := normalizeETag(ifMatch)
	if want == "*" {
		want = ""
	}
	err := s.store.DeleteRegistration(ctx, id, want)
	switch {
	case fault.Is(err, fault.NotFound):
		return fault.New(fault.NotFound, "registration %q does not exist", id)
	case fault.Is(err, fault.PreconditionFailed):
		return fault.New(fault.PreconditionFailed, "If-Match %q does not match the current etag of registration %q", want, id)
	}
	return err
}

// GroupRegistrations returns one page of the registration records of the
// devices that registered through group groupID. The group must exist.
// q may be "", "*" or "SELECT * FROM registrations [WHERE …]".
func (s *Service) GroupRegistrations(ctx context.Context, groupID, q string, page Page) ([]Registration, string, error) {
	if _, err := s.groups.fetch(ctx, groupID); err != nil {
		return nil, "", err
	}
	cond, err := condition(q, "registrations", registrationFields)
	if err != nil {
		return nil, "", err
	}
	list := func(ctx context.Context, after string, limit int) ([]Registration, error) {
		return s.store.Registrations(ctx, groupID, after, limit)
	}
	match := func(r *Registration) bool { return cond == nil || cond.Match(registrationDoc(r)) }
	key := func(r *Registration) string { return IDKey(r.RegistrationID) }
	return collect(ctx, list, key, match, page)
}

var registrationFields = map[string]bool{
	"registrationId": false, "deviceId": false, "assignedHub": false, "status": false,
	"substatus": false, "errorCode": false, "errorMessage": false, "etag": false,
	"createdDateTimeUtc": false, "lastUpdatedDateTimeUtc": false, "payload": true,
}

func registrationDoc(r *Registration) map[string]any {
	d := map[string]any{
		"registrationId":         r.RegistrationID,
		"status":                 string(r.Status),
		"etag":                   r.ETag,
		"createdDateTimeUtc":     r.Created.UTC().Format(timeLayout),
		"lastUpdatedDateTimeUtc": r.Updated.UTC().Format(timeLayout),
	}
	for k, v := range map[string]string{"deviceId": r.DeviceID, "assignedHub": r.AssignedHub, "substatus": r.Substatus, "errorMessage": r.ErrorMessage} {
		if v != "" {
			d[k] = v
		}
	}
	if r.ErrorCode != 0 {
		d["errorCode"] = r.ErrorCode
	}
	if r.Payload != nil {
		d["payload"] = r.Payload
	}
	return d
}

// SameID reports whether two registration or group IDs name the same thing.
func SameID(a, b string) bool { return strings.EqualFold(a, b) }

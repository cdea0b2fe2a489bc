package wire

import "github.com/usher-iot/usher/internal/dps"

// DeviceRegistrationState is the service API's view of a registration record.
type DeviceRegistrationState struct {
	RegistrationID         string         `json:"registrationId"`
	CreatedDateTimeUTC     string         `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string         `json:"assignedHub,omitempty"`
	DeviceID               string         `json:"deviceId,omitempty"`
	Status                 string         `json:"status"`
	Substatus              string         `json:"substatus,omitempty"`
	ErrorCode              int            `json:"errorCode,omitempty"`
	ErrorMessage           string         `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string         `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string         `json:"etag,omitempty"`
	Payload                map[string]any `json:"payload,omitempty"`
}

// FromRegistration renders a registration record.
func FromRegistration(r dps.Registration) DeviceRegistrationState {
	return DeviceRegistrationState{
		RegistrationID:         r.RegistrationID,
		CreatedDateTimeUTC:     FormatTime(r.Created),
		AssignedHub:            r.AssignedHub,
		DeviceID:               r.DeviceID,
		Status:                 string(r.Status),
		Substatus:              r.Substatus,
		ErrorCode:              r.ErrorCode,
		ErrorMessage:           r.ErrorMessage,
		LastUpdatedDateTimeUTC: FormatTime(r.Updated),
		ETag:                   quoteETag(r.ETag),
		Payload:                r.Payload,
	}
}

// QuerySpecification is the body of the query endpoints.
type QuerySpecification struct {
	Query string `json:"query"`
}

// BulkEnrollmentOperation is the body of POST /enrollments.
type BulkEnrollmentOperation struct {
	Mode        string                 `json:"mode"`
	Enrollments []IndividualEnrollment `json:"enrollments"`
}

// BulkEnrollmentGroupOperation is the body of POST /enrollmentGroups.
type BulkEnrollmentGroupOperation struct {
	Mode             string            `json:"mode"`
	EnrollmentGroups []EnrollmentGroup `json:"enrollmentGroups"`
}

// BulkResult is Azure's BulkEnrollmentOperationResult (and the group
// variant): per-item errors name registrationId or enrollmentGroupId.
type BulkResult struct {
	IsSuccessful bool            `json:"isSuccessful"`
	Errors       []BulkItemError `json:"errors"`
}

// BulkItemError is one failed item.
type BulkItemError struct {
	RegistrationID    string `json:"registrationId,omitempty"`
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	ErrorCode         int    `json:"errorCode"`
	ErrorStatus       string `json:"errorStatus"`
}

// FromBulkErrors renders per-item failures; group selects which ID field
// names the item.
func FromBulkErrors(errs []dps.BulkError, group bool) BulkResult {
	out := BulkResult{IsSuccessful: len(errs) == 0, Errors: []BulkItemError{}}
	for _, e := range errs {
		item := BulkItemError{ErrorCode: DPSErrorCode(e.Kind), ErrorStatus: e.Error}
		if group {
			item.EnrollmentGroupID = e.ID
		} else {
			item.RegistrationID = e.ID
		}
		out.Errors = append(out.Errors, item)
	}
	return out
}

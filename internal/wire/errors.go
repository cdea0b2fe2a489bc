package wire

import (
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// ErrorDetails is Azure DPS's ProvisioningServiceErrorDetails.
type ErrorDetails struct {
	ErrorCode    int               `json:"errorCode"`
	TrackingID   string            `json:"trackingId"`
	Message      string            `json:"message"`
	Info         map[string]string `json:"info,omitempty"`
	TimestampUTC string            `json:"timestampUtc"`
}

// dpsError is one row of the DPS error table: the HTTP status and the
// six-digit errorCode whose first three digits are that status (clients such
// as the embedded C SDK derive the status from errorCode/1000).
type dpsError struct {
	status int
	code   int
}

// dpsErrors maps every fault.Kind to its DPS answer. Forbidden answers 401
// because Azure DPS answers a policy without the needed right with 401.
var dpsErrors = map[fault.Kind]dpsError{
	fault.Malformed:            {400, 400001},
	fault.Invalid:              {400, 400004},
	fault.Unsupported:          {400, 400008},
	fault.Unauthenticated:      {401, 401002},
	fault.Forbidden:            {401, 401003},
	fault.NotFound:             {404, 404201},
	fault.MethodNotAllowed:     {405, 405001},
	fault.Conflict:             {409, 409201},
	fault.PreconditionFailed:   {412, 412002},
	fault.TooLarge:             {413, 413001},
	fault.UnsupportedMediaType: {415, 415001},
	fault.Throttled:            {429, 429001},
	fault.Internal:             {500, 500001},
	fault.Unavailable:          {503, 503001},
	fault.Timeout:              {504, 504001},
}

// DPSError returns the HTTP status and body for err on a DPS surface.
func DPSError(err error, trackingID string, now time.Time) (int, ErrorDetails) {
	e, ok := dpsErrors[fault.KindOf(err)]
	if !ok {
		e = dpsErrors[fault.Internal]
	}
	return e.status, ErrorDetails{
		ErrorCode:    e.code,
		TrackingID:   trackingID,
		Message:      fault.MessageOf(err),
		TimestampUTC: FormatTime(now),
	}
}

// DPSErrorCode returns the six-digit DPS errorCode for a fault kind (bulk
// results carry it per item).
func DPSErrorCode(k fault.Kind) int {
	if e, ok := dpsErrors[k]; ok {
		return e.code
	}
	return dpsErrors[fault.Internal].code
}

// TimeLayout is how Azure renders times: seven fractional digits and Z.
const TimeLayout = "2006-01-02T15:04:05.0000000Z"

// FormatTime renders t as Azure does; the zero time renders as "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

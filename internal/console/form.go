package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
)

// defaultTwin prefills the initial twin editor, as the portal does.
const defaultTwin = `{"tags":{},"properties":{"desired":{}}}`

// enrollmentForm is the "Add individual enrollment" or "Add enrollment
// group" form: what the user typed, kept when the form is shown again, and
// the problems found, each shown next to its field.
type enrollmentForm struct {
	Group              bool // an enrollment group: a group name, no device ID
	Mechanism          string
	ID                 string // registration ID or group name
	DeviceID           string
	IoTEdge            bool
	InitialTwin        string
	AutoGenerate       bool
	PrimaryKey         string
	SecondaryKey       string
	ProvisioningStatus string
	Errors             formErrors
}

// formErrors are plain sentences, one per field, and Form for the rest.
type formErrors struct {
	ID, DeviceID, InitialTwin, PrimaryKey, SecondaryKey, Form string
}

func (e formErrors) any() bool { return e != formErrors{} }

func newEnrollmentForm(group bool) *enrollmentForm {
	return &enrollmentForm{Group: group, Mechanism: string(dps.SymmetricKey), InitialTwin: defaultTwin,
		AutoGenerate: true, ProvisioningStatus: string(dps.Enabled)}
}

// readEnrollmentForm reads a posted form (already parsed by checkPost).
func readEnrollmentForm(r *http.Request, group bool) *enrollmentForm {
	v := r.PostForm
	f := &enrollmentForm{
		Group:              group,
		Mechanism:          v.Get("mechanism"),
		DeviceID:           strings.TrimSpace(v.Get("deviceId")),
		InitialTwin:        v.Get("initialTwin"),
		AutoGenerate:       v.Has("autoGenerate"),
		PrimaryKey:         strings.TrimSpace(v.Get("primaryKey")),
		SecondaryKey:       strings.TrimSpace(v.Get("secondaryKey")),
		ProvisioningStatus: v.Get("provisioningStatus"),
	}
	if group {
		f.ID = strings.TrimSpace(v.Get("groupName"))
	} else {
		f.ID = strings.TrimSpace(v.Get("registrationId"))
	}
	switch v.Get("iotEdge") {
	case "true":
		f.IoTEdge = true
	case "", "false":
	default:
		f.Errors.Form = "Choose True or False for IoT Edge device."
	}
	return f
}

// settings checks every field, records each problem next to its field,
// and returns the settings the form describes when there is none.
func (f *enrollmentForm) settings() (dps.Settings, bool) {
	var s dps.Settings
	switch dps.AttestationType(f.Mechanism) {
	case dps.SymmetricKey, "":
		f.Mechanism = string(dps.SymmetricKey)
	case dps.X509, dps.TPM:
		f.Errors.Form = "X.509 and TPM attestation are coming later. Choose Symmetric Key."
	default:
		f.Errors.Form = "Choose an attestation mechanism."
	}
	what := "The registration ID"
	if f.Group {
		what = "The group name"
	}
	if err := dps.ValidateID(what, f.ID); err != nil {
		f.Errors.ID = sentence(fault.MessageOf(err))
	}
	if !f.Group && f.DeviceID != "" {
		if err := hub.ValidateDeviceID(f.DeviceID); err != nil {
			f.Errors.DeviceID = sentence(fault.MessageOf(err))
		}
	}
	twin, err := parseInitialTwin(f.InitialTwin)
	if err != nil {
		f.Errors.InitialTwin = fault.MessageOf(err)
	}
	s.InitialTwin, s.IoTEdge = twin, f.IoTEdge
	s.Attestation.Type = dps.SymmetricKey
	if !f.AutoGenerate {
		f.Errors.PrimaryKey = keyProblem("primary", f.PrimaryKey)
		f.Errors.SecondaryKey = keyProblem("secondary", f.SecondaryKey)
		s.Attestation.PrimaryKey, s.Attestation.SecondaryKey = f.PrimaryKey, f.SecondaryKey
	}
	switch dps.ProvisioningStatus(f.ProvisioningStatus) {
	case dps.Enabled, dps.Disabled:
		s.ProvisioningStatus = dps.ProvisioningStatus(f.ProvisioningStatus)
	case "":
		f.ProvisioningStatus, s.ProvisioningStatus = string(dps.Enabled), dps.Enabled
	default:
		f.Errors.Form = "Choose Enabled or Disabled for the provisioning status."
	}
	return s, !f.Errors.any()
}

// keyProblem says what is wrong with a key the user supplied, or "".
func keyProblem(which, k string) string {
	if k == "" {
		return fmt.Sprintf("Enter a %s key, or check Auto-generate keys.", which)
	}
	if err := sas.ValidateKey(k, dps.MinKeyBytes, dps.MaxKeyBytes); err != nil {
		return fmt.Sprintf("The %s key is not usable: %s.", which, strings.TrimSuffix(fault.MessageOf(err), "."))
	}
	return ""
}

// sentence makes a domain message a sentence: a capital first letter and
// a full stop.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	r, n := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[n:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// parseInitialTwin reads the initial twin editor: empty for none, else a
// JSON object with at most "tags" and "properties", whose only member is
// "desired"; both collections are objects within IoT Hub's twin limits.
// Errors are fault.Invalid with a message for the user.
func parseInitialTwin(text string) (*dps.InitialTwin, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber() // twin values round-trip exactly, as on the API
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonProblem(text, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fault.New(fault.Invalid, "The initial twin has more text after its JSON object; remove it.")
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fault.New(fault.Invalid, `The initial twin must be a JSON object such as %s.`, defaultTwin)
	}
	if extra := otherKeys(top, "tags", "properties"); extra != "" {
		return nil, fault.New(fault.Invalid, `The initial twin may only have "tags" and "properties"; remove %q.`, extra)
	}
	tags, err := object(top, "tags", `"tags"`)
	if err != nil {
		return nil, err
	}
	props, err := object(top, "properties", `"properties"`)
	if err != nil {
		return nil, err
	}
	if extra := otherKeys(props, "desired"); extra != "" {
		return nil, fault.New(fault.Invalid, `The initial twin's "properties" may only have "desired"; remove %q (devices report their own properties).`, extra)
	}
	desired, err := object(props, "desired", `"properties.desired"`)
	if err != nil {
		return nil, err
	}
	if err := hub.ValidateCollection("tags", tags, hub.MaxTagsBytes); err != nil {
		return nil, fault.New(fault.Invalid, "In the initial twin, %s", sentence(fault.MessageOf(err)))
	}
	if err := hub.ValidateCollection("properties.desired", desired, hub.MaxDesiredBytes); err != nil {
		return nil, fault.New(fault.Invalid, "In the initial twin, %s", sentence(fault.MessageOf(err)))
	}
	return &dps.InitialTwin{Tags: orEmpty(tags), Desired: orEmpty(desired)}, nil
}

// object returns m[key] when it is a JSON object or absent (nil).
func object(m map[string]any, key, what string) (map[string]any, error) {
	v, ok := m[key]
	if !ok {
		return nil, nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fault.New(fault.Invalid, "In the initial twin, %s must be a JSON object in braces { }.", what)
	}
	return o, nil
}

// otherKeys returns the first key of m (in sorted order) not in allowed.
func otherKeys(m map[string]any, allowed ...string) string {
	var extra []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return ""
	}
	slices.Sort(extra)
	return extra[0]
}

// jsonProblem explains a JSON syntax error with its line and column.
func jsonProblem(text string, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := position(text, int(syn.Offset))
		return fault.New(fault.Invalid, "The initial twin is not valid JSON: %s (line %d, column %d).", syn.Error(), line, col)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fault.New(fault.Invalid, "The initial twin is not valid JSON: it ends before its last brace.")
	}
	return fault.New(fault.Invalid, "The initial twin is not valid JSON.")
}

// position turns a byte offset into a 1-based line and column.
func position(text string, offset int) (line, col int) {
	offset = min(max(offset, 0), len(text))
	before := text[:offset]
	line = strings.Count(before, "\n") + 1
	col = utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:])
	return line, max(col, 1)
}

package transfer

import (
	"bytes"
	"testing"
)

// FuzzParseLine checks that reading a line never panics and that a line it
// accepts renders to one that reads back to the same bytes (the export
// format is a fixed point).
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		`{"version":1,"kind":"enrollment","enrollment":{"registrationId":"dev-1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"QUFBQUFBQUFBQUFBQUFBQQ==","secondaryKey":null}},"capabilities":{"iotEdge":true},"initialTwin":{"tags":{"a":[1,{"b":null}]},"properties":{"desired":{"x":1e3}}},"provisioningStatus":"disabled"}}`,
		`{"kind":"enrollmentGroup","enrollmentGroup":{"enrollmentGroupId":"g","attestation":{"type":"x509","x509":{"caReferences":{"primary":"ca"}}},"iotHubs":["h"],"reprovisionPolicy":{"updateHubAssignment":false,"migrateDeviceData":true}}}`,
		`{"kind":"enrollment","enrollment":{"registrationId":"d","etag":"\"e\"","registrationState":{"registrationId":"d","status":"assigned"},"attestation":{"type":"symmetricKey"},"optionalDeviceInformation":{"k":"<&>"}}}`,
		`{"version":2}`, `[]`, `{"kind":"enrollment","enrollment":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := ParseLine(line)
		if err != nil {
			return
		}
		out, err := rec.MarshalLine()
		if err != nil {
			t.Fatalf("accepted %q but cannot render it: %v", line, err)
		}
		again, err := ParseLine(out)
		if err != nil {
			t.Fatalf("rendered %q, which does not read back: %v", out, err)
		}
		out2, err := again.MarshalLine()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("rendering is not stable:\n%s\n%s", out, out2)
		}
	})
}

package httpapi_test

// The Azure IoT C SDK's HTTP provisioning requests, replayed byte for byte
// over a real TLS socket, as captured in
// shared/spec/wire/c-sdk-dps-https-register.md (azure-iot-sdk-c 1.15.0,
// provisioning_client/src/prov_transport_http_client.c and
// prov_device_ll_client.c, azure-uhttp-c src/uhttp.c, azure-c-shared-utility
// src/urlencode.c). The answers are checked against what the SDK reads
// (c-sdk-findings.md, "What a server must do for the C SDK", items 1–4 and 9
// as they apply to HTTP).

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/httpapi"
	"github.com/usher-iot/usher/internal/sas"
)

// cAPIVersion is the C SDK's PROV_API_VERSION.
const cAPIVersion = "2021-06-01"

// cEscape is c-utility's URL_EncodeString: A-Z a-z 0-9 - _ . ! ( ) * stay,
// every other byte becomes %xx with lowercase hex.
func cEscape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!()*", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// cToken is the C SDK's registration token (prov_auth_construct_sas_token):
// sr is the encoded audience and the HMAC is over that encoded string; the
// fields come in the order sr, sig, se, skn; it lives 2400 s.
func cToken(t *testing.T, idScope, regID, key string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	sr := cEscape(idScope + "/registrations/" + regID)
	se := strconv.FormatInt(time.Now().Add(2400*time.Second).Unix(), 10)
	h := hmac.New(sha256.New, k)
	io.WriteString(h, sr+"\n"+se)
	sig := base64.StdEncoding.EncodeToString(h.Sum(nil))
	return "SharedAccessSignature sr=" + sr + "&sig=" + cEscape(sig) + "&se=" + se + "&skn=registration"
}

// cConn is one TLS connection as the C SDK holds it for a registration: the
// PUT and every poll go over it.
type cConn struct {
	conn *tls.Conn
	r    *bufio.Reader
}

// dialC connects to srv the way the C SDK does (SNI "localhost", no ALPN),
// trusting srv's certificate.
func dialC(t *testing.T, srv *httptest.Server) *cConn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	conf := &tls.Config{
		ServerName: "localhost",
		MinVersion: tls.VersionTLS12,
		// httptest's certificate does not name localhost; check its chain.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots})
			return err
		},
	}
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &cConn{conn: conn, r: bufio.NewReader(conn)}
}

// cRequest writes one request with exactly the C SDK's headers, in its
// order (construct_http_headers, then uhttp's Host and content-length),
// and reads the answer.
func (c *cConn) cRequest(t *testing.T, method, path, token, body string) response {
	t.Helper()
	raw := method + " " + path + " HTTP/1.1\r\n" +
		"UserAgent: prov_device_client/1.0\r\n" +
		"Accept: application/json\r\n" +
		"Connection: keep-alive\r\n" +
		"Content-Type: application/json; charset=utf-8\r\n" +
		"Authorization: " + token + "\r\n" +
		"Host: localhost:443\r\n" +
		"content-length: " + strconv.Itoa(len(body)) + "\r\n" +
		"\r\n" + body
	if err := c.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c.conn, raw); err != nil {
		t.Fatalf("write %s %s: %v", method, path, err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("read the answer to %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// cRegistration is the C SDK's provisioning exchange for one device.
type cRegistration struct {
	idScope, regID, token string
}

// path is construct_url_path: each part URL-encoded, lowercase hex.
func (r cRegistration) path(tail ...string) string {
	p := "/" + cEscape(r.idScope) + "/registrations/" + cEscape(r.regID)
	for _, s := range tail {
		p += "/" + cEscape(s)
	}
	return p + "?api-version=" + cAPIVersion
}

// put sends PUT register with the body prov_transport_create_json_payload
// builds: {"registrationId":…[,"payload":…]}.
func (r cRegistration) put(t *testing.T, c *cConn, payload string) response {
	t.Helper()
	id, _ := json.Marshal(r.regID)
	body := `{"registrationId":` + string(id)
	if payload != "" {
		body += `,"payload":` + payload
	}
	return c.cRequest(t, http.MethodPut, r.path("register"), r.token, body+"}")
}

// poll sends the status GET: no body, but Content-Type and content-length 0.
func (r cRegistration) poll(t *testing.T, c *cConn, operationID string) response {
	t.Helper()
	return c.cRequest(t, http.MethodGet, r.path("operations", operationID), r.token, "")
}

// cAnswer is what prov_transport_process_json_reply reads, with pointers
// to tell a missing field from an empty one.
type cAnswer struct {
	OperationID       *string `json:"operationId"`
	Status            *string `json:"status"`
	RegistrationState *struct {
		RegistrationID string          `json:"registrationId"`
		AssignedHub    *string         `json:"assignedHub"`
		DeviceID       *string         `json:"deviceId"`
		Status         string          `json:"status"`
		ErrorCode      *int            `json:"errorCode"`
		ErrorMessage   *string         `json:"errorMessage"`
		Payload        json.RawMessage `json:"payload"`
	} `json:"registrationState"`
}

// noHub is an allocator with no hub to give, so registrations end failed.
type noHub struct{}

func (noHub) Allocate(context.Context, dps.AllocationRequest) (dps.Hub, error) {
	return nil, errors.New("no IoT hub is linked")
}

func TestCSDKRegistrationReplay(t *testing.T) {
	a := newTestAPI(t)
	devKey := a.enroll(t, symEnrollment("cap-c-http-01"))
	payloadKey := a.enroll(t, symEnrollment("cap-c-http-02"))
	escKey := a.enroll(t, symEnrollment("cap-c:dev.07"))
	off := symEnrollment("cap-c-http-disabled")
	off["provisioningStatus"] = "disabled"
	offKey := a.enroll(t, off)
	groupKey, _ := a.enrollGroup(t, map[string]any{"enrollmentGroupId": "cap-c-group", "attestation": map[string]any{"type": "symmetricKey"}})
	memberKey, err := sas.DeriveDeviceKey(groupKey, "cap-c-group-member-7")
	if err != nil {
		t.Fatal(err)
	}
	failKey := a.enroll(t, symEnrollment("cap-c-http-nohub"))

	// A second API over the same store whose allocator has no hub.
	noHubSrv := httptest.NewUnstartedServer(httpapi.New(httpapi.Options{
		Registrar: dps.NewRegistrar(a.db, dps.RegistrarOptions{IDScope: a.idScope, Hubs: noHub{}, Skew: time.Minute}),
	}))
	noHubSrv.StartTLS()
	t.Cleanup(noHubSrv.Close)

	tests := []struct {
		name        string
		srv         *httptest.Server
		regID, key  string
		payload     string
		wantPut     int    // 202, or the refusal status
		wantStatus  string // final status of the poll
		wantDevice  string
		wantPayload string
		wantCode    int // registrationState.errorCode of a failed registration
	}{
		{name: "assigned/individual enrollment", srv: a.srv, regID: "cap-c-http-01", key: devKey, wantPut: 202, wantStatus: "assigned", wantDevice: "cap-c-http-01"},
		{name: "assigned/custom payload returned", srv: a.srv, regID: "cap-c-http-02", key: payloadKey, payload: `{"modelId":"dtmi:example;1","extra":42}`,
			wantPut: 202, wantStatus: "assigned", wantDevice: "cap-c-http-02", wantPayload: `{"modelId":"dtmi:example;1","extra":42}`},
		{name: "assigned/group device with derived key", srv: a.srv, regID: "cap-c-group-member-7", key: memberKey, wantPut: 202, wantStatus: "assigned", wantDevice: "cap-c-group-member-7"},
		{name: "assigned/registration ID the SDK escapes", srv: a.srv, regID: "cap-c:dev.07", key: escKey, wantPut: 202, wantStatus: "assigned", wantDevice: "cap-c:dev.07"},
		{name: "401/wrong key", srv: a.srv, regID: "cap-c-http-01", key: payloadKey, wantPut: 401},
		{name: "disabled/enrollment disabled", srv: a.srv, regID: "cap-c-http-disabled", key: offKey, wantPut: 202, wantStatus: "disabled"},
		{name: "failed/no hub keeps operationId and errorCode", srv: noHubSrv, regID: "cap-c-http-nohub", key: failKey, wantPut: 202, wantStatus: "failed", wantCode: 400208},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialC(t, tt.srv)
			reg := cRegistration{idScope: a.idScope, regID: tt.regID, token: cToken(t, a.idScope, tt.regID, tt.key)}
			put := reg.put(t, c, tt.payload)
			if put.status != tt.wantPut {
				t.Fatalf("PUT %s = %d, want %d\n%s", reg.path("register"), put.status, tt.wantPut, put.body)
			}
			if put.status != http.StatusAccepted {
				checkCRefusal(t, put)
				return
			}
			opID := checkCAssigning(t, put)
			poll := reg.poll(t, c, opID)
			checkCFinal(t, poll, opID, tt.wantStatus)
			got := decodeInto[cAnswer](t, poll)
			s := got.RegistrationState
			switch tt.wantStatus {
			case "assigned":
				// Item 9: assignedHub and deviceId; item 1: a hub name with a dot.
				if s.AssignedHub == nil || *s.AssignedHub != hubHost || !strings.Contains(*s.AssignedHub, ".") {
					t.Errorf("registrationState.assignedHub = %v, want %q (with a dot)", deref(s.AssignedHub), hubHost)
				}
				if s.DeviceID == nil || *s.DeviceID != tt.wantDevice {
					t.Errorf("registrationState.deviceId = %v, want %q", deref(s.DeviceID), tt.wantDevice)
				}
				if tt.wantPayload != "" && !jsonSame(t, s.Payload, tt.wantPayload) {
					t.Errorf("registrationState.payload = %s, want %s", s.Payload, tt.wantPayload)
				}
			case "failed":
				// Item 9: errorCode and errorMessage inside registrationState.
				if s.ErrorCode == nil || *s.ErrorCode != tt.wantCode {
					t.Errorf("registrationState.errorCode = %v, want %d", s.ErrorCode, tt.wantCode)
				}
				if s.ErrorMessage == nil || *s.ErrorMessage == "" {
					t.Errorf("registrationState.errorMessage is missing: %s", poll.body)
				}
			}
		})
	}
}

// checkCAssigning checks the answer to the PUT (item 9): 202 with a whole
// number of seconds 1–300 in retry-after, exactly "assigning" and an
// operationId. It returns the operationId.
func checkCAssigning(t *testing.T, put response) string {
	t.Helper()
	checkCRetryAfter(t, put)
	got := decodeInto[cAnswer](t, put)
	if got.Status == nil || *got.Status != "assigning" {
		t.Errorf("PUT status = %v, want exactly \"assigning\": %s", deref(got.Status), put.body)
	}
	if got.OperationID == nil || *got.OperationID == "" {
		t.Fatalf("PUT answer has no operationId: %s", put.body)
	}
	if id := *got.OperationID; cEscape(id) != id {
		t.Errorf("operationId %q has characters the C SDK escapes in the poll path", id)
	}
	return *got.OperationID
}

// checkCRetryAfter checks that retry-after is what parse_retry_after_value
// reads without clamping: a whole number of seconds from 1 to 300.
func checkCRetryAfter(t *testing.T, r response) {
	t.Helper()
	ra := r.header.Get("Retry-After")
	n, err := strconv.Atoi(ra)
	if err != nil || n < 1 || n > 300 {
		t.Errorf("retry-after %q, want whole seconds from 1 to 300", ra)
	}
}

// checkCFinal checks the poll's answer (item 9): 200, the operation's
// operationId at the top level, exactly the lower-case final status, and
// registrationState with the same status.
func checkCFinal(t *testing.T, poll response, opID, want string) {
	t.Helper()
	if poll.status != http.StatusOK {
		t.Fatalf("poll = %d, want 200\n%s", poll.status, poll.body)
	}
	got := decodeInto[cAnswer](t, poll)
	if got.OperationID == nil || *got.OperationID != opID {
		t.Errorf("poll operationId = %v, want %q", deref(got.OperationID), opID)
	}
	if got.Status == nil || *got.Status != want {
		t.Errorf("poll status = %v, want exactly %q", deref(got.Status), want)
	}
	if got.RegistrationState == nil {
		t.Fatalf("poll answer has no registrationState: %s", poll.body)
	}
	if got.RegistrationState.Status != want {
		t.Errorf("registrationState.status = %q, want %q", got.RegistrationState.Status, want)
	}
}

// checkCRefusal checks a 401 (items 2 and 9 of c-sdk-findings.md, and the
// captured stub answer): the C SDK parses it like a 2xx and needs the DPS
// error body, without a status, to end in PROV_DEVICE_RESULT_DEV_AUTH_ERROR.
func checkCRefusal(t *testing.T, r response) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("refusal body is not JSON: %v\n%s", err, r.body)
	}
	e := r.errorBody(t)
	if e.ErrorCode != 401002 || e.TrackingID == "" || e.Message == "" || e.TimestampUTC == "" {
		t.Errorf("refusal body = %s, want DPS's error body with errorCode 401002, trackingId, message and timestampUtc", r.body)
	}
	if _, ok := body["status"]; ok {
		t.Errorf("refusal body has a status field, which the C SDK would read as a registration status: %s", r.body)
	}
	if got := r.header.Get("x-ms-error-code"); got != "401002" {
		t.Errorf("x-ms-error-code = %q, want 401002", got)
	}
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// jsonSame reports whether the JSON texts got and want hold the same value.
func jsonSame(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

// TestCSDKTokenVectors pins cToken's signing to the digest's C-style vector
// (dps-protocol.md §3.3), so the replay signs as the SDK does.
func TestCSDKTokenVectors(t *testing.T) {
	const key = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
	sr := cEscape("0ne00000A0A/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	if sr != "0ne00000A0A%2fregistrations%2fsn-007-888-abc-mac-a1-b2-c3-d4-e5-f6" {
		t.Fatalf("cEscape = %q", sr)
	}
	k, _ := base64.StdEncoding.DecodeString(key)
	h := hmac.New(sha256.New, k)
	io.WriteString(h, sr+"\n1700000000")
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != "d0v1ROtrJfDl1lL+6Gm6mCyZUBsvFsT3HgNEOWfYmE0=" {
		t.Errorf("signature = %s, want the digest's C-style vector", got)
	}
	if got := cEscape("cap-c:dev.07"); got != "cap-c%3adev.07" {
		t.Errorf("cEscape(cap-c:dev.07) = %q, want cap-c%%3adev.07", got)
	}
}

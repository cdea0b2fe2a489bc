package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// Sessions are stateless: the cookie carries the policy name, the expiry,
// a tag of the key that signed in and a nonce, signed with HMAC-SHA256
// under the console's secret. Every request reads the policy again, so
// deleting it, or renewing the key that signed in, ends its sessions, and a
// change of rights applies at once.
const (
	cookieName = "usher_session"
	sessionTTL = 8 * time.Hour
	csrfField  = "csrf"
)

// Domain separation of the values the secret signs.
const (
	macSession = "usher-console-session\x00"
	macCSRF    = "usher-console-csrf\x00"
	macKey     = "usher-console-key\x00"
)

// settingSecret is the store setting that holds the session secret.
const settingSecret = "console_session_secret"

// SettingStore keeps small settings; instance.Store is one.
type SettingStore interface {
	// InitSetting stores value unless one exists and returns the stored one.
	InitSetting(ctx context.Context, key, value string) (string, error)
}

// LoadSecret returns the console's session secret, creating a random one
// on first use. It is kept in the store, so sessions survive restarts and
// every node sharing the store accepts them.
func LoadSecret(ctx context.Context, st SettingStore) ([]byte, error) {
	fresh := make([]byte, MinSecretBytes)
	_, _ = rand.Read(fresh) // crypto/rand does not fail
	v, err := st.InitSetting(ctx, settingSecret, hex.EncodeToString(fresh))
	if err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(v)
	if err != nil || len(b) < MinSecretBytes {
		return nil, fault.New(fault.Internal, "the stored console session secret is damaged; delete the setting %q to make a new one", settingSecret)
	}
	return b, nil
}

// session is a signed-in policy, as the store has it now.
type session struct {
	policy access.Policy
	cookie string // the cookie's value; the CSRF token derives from it
	csrf   string
}

// can reports whether the session's policy has every right in r.
func (s *session) can(r access.Rights) bool { return s != nil && s.policy.Rights&r == r }

// require returns fault.Forbidden naming the rights the policy lacks.
func (s *session) require(r access.Rights) error {
	if err := s.policy.Require(r); err != nil {
		return fault.New(fault.Forbidden, "The policy %q does not have the right %s, which this needs. Nothing was changed.", s.policy.Name, r&^s.policy.Rights)
	}
	return nil
}

// requireRead is require for pages that only show things.
func (s *session) requireRead(r access.Rights) error {
	if err := s.policy.Require(r); err != nil {
		return fault.New(fault.Forbidden, "The policy %q does not have the right %s, which this page needs.", s.policy.Name, r&^s.policy.Rights)
	}
	return nil
}

func (c *Console) mac(domain, value string) []byte {
	h := hmac.New(sha256.New, c.secret)
	h.Write([]byte(domain))
	h.Write([]byte(value))
	return h.Sum(nil)
}

var b64 = base64.RawURLEncoding

// keyTag identifies a policy key without revealing it.
func (c *Console) keyTag(key string) string { return b64.EncodeToString(c.mac(macKey, key)[:12]) }

// newCookieValue signs a session of policy name that signed in with key.
func (c *Console) newCookieValue(name, key string, expires time.Time) string {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand does not fail
	payload := strings.Join([]string{"1", name, strconv.FormatInt(expires.Unix(), 10), c.keyTag(key), b64.EncodeToString(nonce[:])}, "|")
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(c.mac(macSession, payload))
}

// session checks the request's cookie and returns its session with the
// policy's current rights. Every reason to refuse is fault.Unauthenticated.
func (c *Console) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil, fault.New(fault.Unauthenticated, "not signed in")
	}
	ended := fault.New(fault.Unauthenticated, "the session is not valid or has ended")
	enc, sig, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return nil, ended
	}
	payload, err := b64.DecodeString(enc)
	if err != nil {
		return nil, ended
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac(macSession, string(payload))) {
		return nil, ended
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 5 || parts[0] != "1" {
		return nil, ended
	}
	name, tag := parts[1], parts[3]
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || !c.now().Before(time.Unix(exp, 0)) {
		return nil, ended
	}
	p, err := c.policies.Policy(r.Context(), access.DPS, name)
	switch {
	case fault.Is(err, fault.NotFound):
		return nil, ended
	case err != nil:
		return nil, err
	}
	primary := subtle.ConstantTimeCompare([]byte(tag), []byte(c.keyTag(p.PrimaryKey)))
	secondary := subtle.ConstantTimeCompare([]byte(tag), []byte(c.keyTag(p.SecondaryKey)))
	if primary|secondary != 1 {
		return nil, ended
	}
	return &session{policy: p, cookie: ck.Value, csrf: b64.EncodeToString(c.mac(macCSRF, ck.Value))}, nil
}

// validCSRF reports, in constant time, whether token is the session's.
func (c *Console) validCSRF(s *session, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

func (c *Console) sessionCookie(value string, expires time.Time) *http.Cookie {
	return &http.Cookie{
		Name: cookieName, Value: value, Path: Prefix, Expires: expires, MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	}
}

func (c *Console) clearCookie() *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
}

// signinForm is what the sign-in page shows and keeps: never the key.
type signinForm struct {
	Policy string
	Error  string
}

func (c *Console) signinPage(r *http.Request) (response, error) {
	if _, err := c.session(r); err == nil {
		return redirect(Prefix + "/"), nil
	}
	return c.view(nil, "", "Sign in", signinForm{}), nil
}

// signin checks a policy name and key, or a service connection string,
// against the DPS policies and starts a session.
func (c *Console) signin(r *http.Request) (response, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return c.signinFailed("", fault.New(fault.Invalid, "The sign-in form could not be read."))
	}
	name := strings.TrimSpace(r.PostFormValue("policy"))
	key := strings.TrimSpace(r.PostFormValue("key"))
	conn := strings.TrimSpace(r.PostFormValue("connectionString"))
	switch {
	case conn != "" && (name != "" || key != ""):
		return c.signinFailed(name, fault.New(fault.Invalid, "Enter a policy name and key, or a connection string, not both."))
	case conn != "":
		cs, err := sas.ParseConnectionString(conn)
		if err != nil {
			return c.signinFailed("", fault.New(fault.Invalid, "The connection string is not valid: %s.", fault.MessageOf(err)))
		}
		if cs.SharedAccessKeyName == "" {
			return c.signinFailed("", fault.New(fault.Invalid, "The connection string names no policy (SharedAccessKeyName). Use a DPS service connection string, such as the one `usher info` prints."))
		}
		name, key = cs.SharedAccessKeyName, cs.SharedAccessKey
	case name == "" || key == "":
		return c.signinFailed(name, fault.New(fault.Invalid, "Enter a policy name and its key, or a connection string."))
	}
	p, err := c.policies.Policy(r.Context(), access.DPS, name)
	if err != nil && !fault.Is(err, fault.NotFound) {
		return nil, err
	}
	// Both keys are compared whether or not the policy exists, so the
	// answer takes as long either way.
	primary := subtle.ConstantTimeCompare([]byte(key), []byte(p.PrimaryKey))
	secondary := subtle.ConstantTimeCompare([]byte(key), []byte(p.SecondaryKey))
	if err != nil || p.PrimaryKey == "" || primary|secondary != 1 {
		c.log.Info("console sign-in refused", "policy", truncate(name, 64), "remote", r.RemoteAddr)
		return c.signinFailed(name, fault.New(fault.Unauthenticated, "The policy name or key is not right."))
	}
	expires := c.now().Add(sessionTTL)
	c.log.Info("console sign-in", "policy", p.Name, "remote", r.RemoteAddr)
	return signedIn{cookie: c.sessionCookie(c.newCookieValue(p.Name, key, expires), expires)}, nil
}

// signedIn sets the session cookie and goes to the overview.
type signedIn struct{ cookie *http.Cookie }

func (s signedIn) write(w http.ResponseWriter) error {
	http.SetCookie(w, s.cookie)
	return redirect(Prefix + "/").write(w)
}

func (c *Console) signinFailed(name string, err error) (response, error) {
	p := c.view(nil, "", "Sign in", signinForm{Policy: name, Error: fault.MessageOf(err)})
	p.status = status(err)
	return p, nil
}

// signout ends the session in this browser. Sessions are not recorded on
// the server; renewing the policy's key ends all of them.
func (c *Console) signout(*http.Request, *session) (response, error) {
	return signedOut{cookie: c.clearCookie()}, nil
}

type signedOut struct{ cookie *http.Cookie }

func (s signedOut) write(w http.ResponseWriter) error {
	http.SetCookie(w, s.cookie)
	return redirect(Prefix + "/signin").write(w)
}

// truncate shortens untrusted text for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// String hides a session's secrets from logs.
func (s *session) String() string { return fmt.Sprintf("session(%s)", s.policy.Name) }

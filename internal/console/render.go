package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/wire"
)

// pageTemplate is one page's template set: the layout, the shared
// partials and the page's own "content".
type pageTemplate struct{ t *template.Template }

// pageFiles are the pages, each a file in templates/ defining "content".
var pageFiles = []string{
	"signin", "overview", "enrollments", "enrollment_form", "enrollment", "group",
	"devices", "device", "deployments", "error",
}

func parsePages(assetURL func(string) string) (map[string]*pageTemplate, error) {
	funcs := template.FuncMap{
		"asset":          assetURL,
		"enrollmentPath": enrollmentPath,
		"groupPath":      groupPath,
		"devicePath":     func(id string) string { return Prefix + "/hub/devices/" + url.PathEscape(id) },
		"time":           formatTime,
		"json":           prettyJSON,
		"mechanism":      mechanismLabel,
		"count":          countLabel,
	}
	out := map[string]*pageTemplate{}
	for _, name := range pageFiles {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = &pageTemplate{t: t}
	}
	return out, nil
}

// enrollmentPath is the details page of an individual enrollment.
// "/enrollments/new" is the add form, so an enrollment called "new" is
// linked with another spelling of the same (case-insensitive) ID.
func enrollmentPath(id string) string {
	return Prefix + "/enrollments/" + detailsSegment(id)
}

// groupPath is the details page of an enrollment group; see enrollmentPath.
func groupPath(id string) string { return Prefix + "/groups/" + detailsSegment(id) }

func detailsSegment(id string) string {
	if id == "new" {
		id = "New"
	}
	return url.PathEscape(id)
}

// countLabel renders a count, or says which right would show it.
func countLabel(n *int, right string) string {
	if n == nil {
		return "(needs " + right + ")"
	}
	return strconv.Itoa(*n)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// prettyJSON renders v indented, for <pre> blocks.
func prettyJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // html/template escapes it for the page
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

// rights are what the signed-in policy may do, for templates to decide
// which links, buttons and forms a page has.
type rights struct {
	EnrollmentRead          bool
	EnrollmentWrite         bool
	RegistrationStatusRead  bool
	RegistrationStatusWrite bool
	Hub                     bool // ServiceConfig: the built-in hub's pages
}

func rightsOf(s *session) rights {
	return rights{
		EnrollmentRead:          s.can(access.EnrollmentRead),
		EnrollmentWrite:         s.can(access.EnrollmentWrite),
		RegistrationStatusRead:  s.can(access.RegistrationStatusRead),
		RegistrationStatusWrite: s.can(access.RegistrationStatusWrite),
		Hub:                     s.can(hubRight),
	}
}

// hubRight is the DPS right that opens the built-in hub's read-only pages:
// in Azure, ServiceConfig governs a DPS's linked IoT hubs.
const hubRight = access.ServiceConfig

// page is a rendered page: the layout's data and the page's own.
type page struct {
	template string
	status   int
	render   func(name string) (*pageTemplate, bool)

	Title    string
	Nav      string // the active navigation link
	SignedIn bool
	Policy   string
	Can      rights
	CSRF     string
	Data     any
}

// view returns the page that shows data, chosen by data's type.
func (c *Console) view(s *session, nav, title string, data any) *page {
	p := &page{template: templateOf(data), status: http.StatusOK, Title: title, Nav: nav, Data: data,
		render: func(name string) (*pageTemplate, bool) { t, ok := c.pages[name]; return t, ok }}
	if s != nil {
		p.SignedIn, p.Policy, p.Can, p.CSRF = true, s.policy.Name, rightsOf(s), s.csrf
	}
	return p
}

func templateOf(data any) string {
	switch data.(type) {
	case signinForm:
		return "signin"
	case overviewView:
		return "overview"
	case listView:
		return "enrollments"
	case *enrollmentForm:
		return "enrollment_form"
	case enrollmentView:
		return "enrollment"
	case groupView:
		return "group"
	case devicesView:
		return "devices"
	case deviceView:
		return "device"
	case deploymentsView:
		return "deployments"
	}
	return "error"
}

func (p *page) write(w http.ResponseWriter) error {
	t, ok := p.render(p.template)
	if !ok {
		return fmt.Errorf("console: no template %q", p.template)
	}
	var b bytes.Buffer
	if err := t.t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return fmt.Errorf("console: render %s: %w", p.template, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(p.status)
	_, err := b.WriteTo(w)
	return err
}

// keyView is one symmetric key on a details page.
type keyView struct {
	Name  string // "primary" or "secondary": the element IDs' stem
	Label string
	Key   string
}

func keysOf(a dps.Attestation) []keyView {
	if a.Type != dps.SymmetricKey {
		return nil
	}
	return []keyView{{"primary", "Primary key", a.PrimaryKey}, {"secondary", "Secondary key", a.SecondaryKey}}
}

// twinJSON renders an initial twin as the form and details pages show it.
func twinJSON(t *dps.InitialTwin) string {
	if t == nil {
		return ""
	}
	s, err := prettyJSON(wire.InitialTwin{Tags: orEmpty(t.Tags), Properties: &wire.InitialTwinProperties{Desired: orEmpty(t.Desired)}})
	if err != nil {
		return ""
	}
	return s
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// mechanismLabel names an attestation type as the portal does.
func mechanismLabel(t dps.AttestationType) string {
	switch t {
	case dps.SymmetricKey:
		return "Symmetric Key"
	case dps.X509:
		return "X.509 certificates"
	case dps.TPM:
		return "TPM"
	}
	return string(t)
}

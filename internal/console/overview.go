package console

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
)

// overviewView is the overview page. A count is nil when the policy may
// not see what it counts.
type overviewView struct {
	IDScope     string
	DeviceURL   string // global device endpoint and service API
	MQTTURL     string
	HubHostName string
	HTTPSAddr   string
	MQTTAddr    string
	HasCA       bool
	Enrollments *int
	Groups      *int
	Devices     *int
	Deployments *int
}

func (c *Console) overview(r *http.Request, s *session) (response, error) {
	ep := c.endpoints
	v := overviewView{
		IDScope:     c.idScope,
		DeviceURL:   "https://" + ep.HostName() + portSuffix(ep.HTTPSAddr, "443"),
		MQTTURL:     "mqtts://" + ep.HostName() + portSuffix(ep.MQTTAddr, "8883"),
		HubHostName: ep.HubHostName(),
		HTTPSAddr:   ep.HTTPSAddr,
		MQTTAddr:    ep.MQTTAddr,
		HasCA:       ep.CAFile != "",
	}
	ctx := r.Context()
	if s.can(access.EnrollmentRead) {
		n, err := count(ctx, c.dps.QueryEnrollments)
		if err != nil {
			return nil, err
		}
		m, err := count(ctx, c.dps.QueryGroups)
		if err != nil {
			return nil, err
		}
		v.Enrollments, v.Groups = &n, &m
	}
	if s.can(hubRight) {
		n, err := c.hub.Count(ctx, "SELECT * FROM devices")
		if err != nil {
			return nil, err
		}
		deployments, err := c.hub.Configurations(ctx, 0)
		if err != nil {
			return nil, err
		}
		m := len(deployments)
		v.Devices, v.Deployments = &n, &m
	}
	return c.view(s, "overview", "Overview", v), nil
}

// caFile downloads the CA certificate devices should trust: the one Usher
// generated. An operator's own certificate has no CA file here.
func (c *Console) caFile(_ *http.Request, _ *session) (response, error) {
	notHere := fault.New(fault.NotFound, "This server uses a certificate its operator supplied, so Usher has no CA file to offer. Ask the operator for the CA that issued it.")
	if c.endpoints.CAFile == "" {
		return nil, notHere
	}
	b, err := os.ReadFile(c.endpoints.CAFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notHere
	}
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read the CA file")
	}
	return download{name: "usher-ca.pem", contentType: "application/x-pem-file", body: b}, nil
}

// portSuffix renders ":port" unless it is the protocol's default.
func portSuffix(addr, def string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == def {
		return ""
	}
	return ":" + port
}

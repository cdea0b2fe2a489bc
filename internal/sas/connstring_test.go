package sas

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/usher-iot/usher/internal/fault"
)

const connKey = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ConnectionString
	}{
		{"ok/service", "HostName=hub.example;SharedAccessKeyName=iothubowner;SharedAccessKey=" + connKey,
			ConnectionString{HostName: "hub.example", SharedAccessKeyName: "iothubowner", SharedAccessKey: connKey}},
		{"ok/device", "HostName=127.0.0.1;DeviceId=cap-c-hub-dev-01;SharedAccessKey=" + connKey,
			ConnectionString{HostName: "127.0.0.1", DeviceID: "cap-c-hub-dev-01", SharedAccessKey: connKey}},
		{"ok/module via gateway", "HostName=hub.example;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + connKey + ";GatewayHostName=localhost:8884",
			ConnectionString{HostName: "hub.example", DeviceID: "d1", ModuleID: "m1", SharedAccessKey: connKey, GatewayHostName: "localhost:8884"}},
		{"ok/any order and case", "sharedaccesskey=" + connKey + ";HOSTNAME=dps.example;deviceid=d1",
			ConnectionString{HostName: "dps.example", DeviceID: "d1", SharedAccessKey: connKey}},
		{"ok/value keeps its = padding", "HostName=h;SharedAccessKey=AAAA==",
			ConnectionString{HostName: "h", SharedAccessKey: "AAAA=="}},
		{"ok/trailing and empty parts", ";HostName=h;;SharedAccessKey=k; ;",
			ConnectionString{HostName: "h", SharedAccessKey: "k"}},
		{"ok/spaces trimmed", " HostName = h ; SharedAccessKey = k ",
			ConnectionString{HostName: "h", SharedAccessKey: "k"}},
		{"ok/unknown parts ignored", "HostName=h;SharedAccessKey=k;x509=true;SharedAccessSignature=SharedAccessSignature sr=h&sig=a&se=1",
			ConnectionString{HostName: "h", SharedAccessKey: "k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseConnectionString (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	tests := []struct {
		name, in, msg string
	}{
		{"invalid/empty", "", "no HostName"},
		{"invalid/no HostName", "DeviceId=d;SharedAccessKey=k", "no HostName"},
		{"invalid/empty HostName", "HostName=;SharedAccessKey=k", "no HostName"},
		{"invalid/no key", "HostName=h;DeviceId=d", "no SharedAccessKey"},
		{"invalid/x509 device", "HostName=h;DeviceId=d;x509=true", "no SharedAccessKey"},
		{"invalid/part without =", "HostName=h;SharedAccessKey=k;garbage", "without '='"},
		{"invalid/duplicate", "HostName=h;hostname=g;SharedAccessKey=k", "HostName more than once"},
		{"invalid/non-ASCII case folding", "Ho\u017ftName=h;SharedAccessKey=k", "no HostName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.in)
			wantFault(t, err, fault.Invalid, tt.msg)
			if diff := cmp.Diff(ConnectionString{}, got); diff != "" {
				t.Errorf("returned a value with its error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConnectionStringString(t *testing.T) {
	tests := []struct {
		name string
		in   ConnectionString
		want string
	}{
		{"ok/service", ConnectionString{HostName: "h", SharedAccessKeyName: "p", SharedAccessKey: connKey},
			"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + connKey},
		{"ok/all parts in Azure order", ConnectionString{GatewayHostName: "g", SharedAccessKey: "k", SharedAccessKeyName: "p", ModuleID: "m", DeviceID: "d", HostName: "h"},
			"HostName=h;DeviceId=d;ModuleId=m;SharedAccessKeyName=p;SharedAccessKey=k;GatewayHostName=g"},
		{"ok/empty", ConnectionString{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConnectionStringRoundTrip(t *testing.T) {
	for _, in := range []string{
		"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + connKey,
		"HostName=hub.example;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + connKey + ";GatewayHostName=localhost:8884",
	} {
		c, err := ParseConnectionString(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.String(); got != in {
			t.Errorf("round trip:\n got %s\nwant %s", got, in)
		}
	}
}

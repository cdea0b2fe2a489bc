package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
)

// TestServeConsole checks that `usher serve` mounts the web console beside
// the API on its HTTPS listener.
func TestServeConsole(t *testing.T) {
	s := startServer(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := caClient(t, s.Info.CAFile)
	c.Jar = jar
	base := "https://" + s.Info.HTTPSAddr
	get := func(t *testing.T, path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	t.Run("sign-in page", func(t *testing.T) {
		resp, body := get(t, "/console")
		if resp.Request.URL.Path != "/console/signin" || !strings.Contains(body, `id="signin"`) {
			t.Errorf("/console ends at %s without the sign-in form", resp.Request.URL.Path)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("the console's security headers are missing")
		}
	})
	t.Run("signed in with the owner connection string", func(t *testing.T) {
		resp, err := c.PostForm(base+"/console/signin", url.Values{"connectionString": {s.Info.ServiceConnectionString}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Request.URL.Path != "/console/" || !strings.Contains(string(b), s.Info.IDScope) {
			t.Fatalf("after sign-in: %s %d", resp.Request.URL.Path, resp.StatusCode)
		}
		_, ca := get(t, "/console/ca.pem")
		want, err := os.ReadFile(s.Info.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		if ca != string(want) {
			t.Errorf("/console/ca.pem is not the CA file")
		}
	})
	t.Run("the API is still served", func(t *testing.T) {
		if resp, _ := get(t, "/healthz"); resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz = %d", resp.StatusCode)
		}
		resp, body := get(t, "/consoles?api-version=2021-10-01")
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
			t.Errorf("/consoles is not the API's 404: %d %s %.100s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})
}

package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/console"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/httpapi"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/hubassign"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/metrics"
	"github.com/usher-iot/usher/internal/mqttapi"
	"github.com/usher-iot/usher/internal/pki"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/sqlite"
	"github.com/usher-iot/usher/internal/throttle"
	"github.com/usher-iot/usher/internal/tlsreload"
)

func serveCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run Usher on its embedded defaults (SQLite, generated TLS, ports 443 and 8883)",
		Long: `Run the Usher server. With no flags it keeps everything in ./usher-data,
generates an ID scope, a CA, a server certificate and the owner policies on
first start, and serves HTTPS on :443 and MQTT on :8883 as host "localhost".

With --store postgres --postgres-url URL the records live in PostgreSQL
instead of ./usher-data/usher.db; the schema is migrated on start, once
however many nodes start. Nodes on one database share everything, the
generated TLS material included (the first node creates it; the data
directory then holds only a copy of the CA certificate), and relay hub
traffic to each other, so any node serves any device by the same host name.
With --secrets-key-file (or USHER_SECRETS_KEY) every record and setting is
encrypted in the database; every node needs the same key.

SIGHUP reloads the TLS certificate and key (--tls-cert/--tls-key, also
reloaded when the files change, or the generated material) for new
connections; a pair that fails to load is logged and the old one kept.

With --seed FILE the server applies a YAML or JSON seed file of policies,
enrollments, groups and hub configurations before it serves: records
missing are created, records that differ updated, equal ones left alone.

Settings come from defaults, then --config FILE (TOML; keys are the flag
names), then USHER_* environment variables, then flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd.Flags(), e.getenv)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, e)
		},
	}
	addConfigFlags(cmd.Flags())
	return cmd
}

// dbFile is the SQLite database inside the data directory.
const dbFile = "usher.db"

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by Config.Validate
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openDataDir creates the data directory (0700) and opens its database,
// keeping the file private (it holds keys).
func openDataDir(ctx context.Context, dir string) (*sqlite.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, dbFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	f.Close()
	return sqlite.Open(ctx, path)
}

func serve(ctx context.Context, cfg Config, e *env) error {
	log := newLogger(cfg, e.stderr)
	seedFile, err := loadSeed(cfg.Seed) // checked whole before anything is opened or written
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg, e.getenv)
	if err != nil {
		return err
	}
	defer db.Close()
	idScope, err := instance.Bootstrap(ctx, db, db)
	if err != nil {
		return fmt.Errorf("first-start setup: %w", err)
	}
	tlsConf, caFile, err := loadTLS(ctx, db, cfg, log)
	if err != nil {
		return err
	}
	certs, err := reloadableTLS(ctx, db, cfg, tlsConf, e.timeouts.certPoll, log)
	if err != nil {
		return err
	}
	lns, err := openListeners(cfg)
	if err != nil {
		return err
	}
	endpoints := instance.Endpoints{HostNames: cfg.Hostnames, HubHost: cfg.HubHostName(), HTTPSAddr: lns.https.Addr().String(), MQTTAddr: lns.mqtt.Addr().String(), CAFile: caFile}
	if err := instance.SaveEndpoints(ctx, db, endpoints); err != nil {
		lns.close()
		return err
	}
	if !strings.Contains(cfg.HubHostName(), ".") {
		log.Warn("the hub host name has no dot; the Azure IoT C SDK refuses such an assignedHub. Give real fleets a dotted name with --hub-hostname (and --hostname)", "hubHostName", cfg.HubHostName())
	}
	consoleSecret, err := console.LoadSecret(ctx, db)
	if err != nil {
		lns.close()
		return err
	}
	s, err := newServers(cfg, db, idScope, endpoints, consoleSecret, tlsConf, e.timeouts, log)
	if err != nil {
		lns.close()
		return err
	}
	s.certs, s.hangup = certs, e.hangup
	if s.hangup == nil {
		hangup := make(chan os.Signal, 1)
		signal.Notify(hangup, syscall.SIGHUP)
		defer signal.Stop(hangup)
		s.hangup = hangup
	}
	if pg, ok := db.(*postgres.DB); ok {
		relay := postgres.NewBusRelay(pg, s.bus, log)
		if err := relay.Start(ctx); err != nil {
			lns.close()
			return err
		}
		defer relay.Close()
		s.bus.SetRelay(relay)
		if err := s.presence.Start(ctx); err != nil {
			lns.close()
			return err
		}
		defer s.presence.Close()
	}
	// After the relay starts, so that twin changes of a seeded deployment
	// reach devices connected to other nodes.
	if err := applySeed(ctx, seedFile, s, db, log); err != nil {
		lns.close()
		return err
	}
	return s.run(ctx, lns, func() error {
		if err := printBanner(ctx, e.stdout, db, idScope, endpoints, lns.metricsAddr()); err != nil {
			return err
		}
		log.Info("usher is serving", "https", endpoints.HTTPSAddr, "mqtt", endpoints.MQTTAddr, "metrics", lns.metricsAddr(), "idScope", idScope)
		return nil
	})
}

// listeners are opened before anything is announced, so the recorded
// addresses are the bound ones (port 0 works). metrics is nil without
// --metrics-addr.
type listeners struct{ https, mqtt, metrics net.Listener }

func openListeners(cfg Config) (listeners, error) {
	var l listeners
	var err error
	if l.https, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
		return l, fmt.Errorf("https: %w", err)
	}
	if l.mqtt, err = net.Listen("tcp", cfg.MQTTAddr); err != nil {
		l.https.Close()
		return l, fmt.Errorf("mqtt: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if l.metrics, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			l.https.Close()
			l.mqtt.Close()
			return l, fmt.Errorf("metrics: %w", err)
		}
	}
	return l, nil
}

func (l listeners) close() {
	l.https.Close()
	l.mqtt.Close()
	if l.metrics != nil {
		l.metrics.Close()
	}
}

// metricsAddr is the metrics listener's bound address, "" without one.
func (l listeners) metricsAddr() string {
	if l.metrics == nil {
		return ""
	}
	return l.metrics.Addr().String()
}

// servers are the HTTPS and MQTT servers over the wired services, and the
// background work they own.
type servers struct {
	log       *slog.Logger
	https     *http.Server
	tls       *tls.Config
	mqtt      *mqttapi.Server
	registrar *dps.Registrar
	// enrollments are the enrollment use cases the API and console serve.
	enrollments *dps.Service
	hub         *hub.Service
	bus         *hub.Bus
	presence    *postgres.Presence // nil on SQLite: the bus is the truth
	settings    instance.Store
	exclusive   exclusiveRunner
	ready       *atomic.Bool
	maxConns    int // per listener; 0 for no limit
	// metrics is nil without --metrics-addr (a nil *Metrics records
	// nothing); its Throttled method is the rate limiter's hook.
	metrics *metrics.Metrics
	audit   *audit.Log
	// certs serve the TLS certificate to both listeners and reload it on
	// hangup (SIGHUP) and when --tls-cert/--tls-key change (tlsreload).
	certs  *tlsreload.Reloader
	hangup <-chan os.Signal
}

// timeouts bound how long a client may hold a connection without getting
// on with its request; zero fields take the defaults. They are not settings:
// tests shorten them (env.timeouts).
type timeouts struct {
	readHeader  time.Duration // HTTPS: TLS handshake and request headers; 10 s
	idle        time.Duration // HTTPS: between requests on a kept-alive connection; 2 min
	body        time.Duration // HTTPS: reading a request body; 30 s
	mqttConnect time.Duration // MQTT: TLS handshake and CONNECT; 30 s
	certPoll    time.Duration // how often --tls-cert/--tls-key are looked at; 5 s
}

// newServers wires the domain services to the transports by hand.
func newServers(cfg Config, db store, idScope string, endpoints instance.Endpoints, consoleSecret []byte, tlsConf *tls.Config, to timeouts, log *slog.Logger) (*servers, error) {
	var m *metrics.Metrics
	if cfg.MetricsAddr != "" {
		m = metrics.New()
	}
	maxAge, maxEntries := cfg.auditRetention()
	auditLog := audit.New(m.AuditStore(db), audit.Options{Logger: log, MaxAge: maxAge, MaxEntries: maxEntries})
	dpsStore := m.DPSStore(db)
	bus := hub.NewBus()
	hubOpts := hub.Options{HostName: cfg.HubHostName(), Bus: bus, Logger: log, Auditor: auditLog.Hub()}
	var presence *postgres.Presence // several nodes: who is connected anywhere
	if pg, ok := db.(*postgres.DB); ok {
		presence = postgres.NewPresence(pg, bus, log, postgres.PresenceOptions{})
		hubOpts.Presence = presence
	}
	hubSvc := hub.NewService(db, hubOpts)
	registrar := dps.NewRegistrar(dpsStore, dps.RegistrarOptions{
		IDScope: idScope, Hubs: dps.SingleHub{Hub: hubassign.Hub{Service: hubSvc}}, Skew: tokenSkew, Logger: log, Auditor: auditLog,
	})
	limitOpts, maxConns, err := cfg.Limits() // checked by Config.Validate
	if err != nil {
		return nil, err
	}
	limitOpts.OnThrottle = m.Throttled
	limits := throttle.New(limitOpts)
	mqttSrv, err := mqttapi.New(mqttapi.Options{
		Logger: log, TLS: tlsConf, Registrar: registrar, RetryAfter: retryAfterSeconds,
		Hub: hubSvc, Bus: bus, HubTokenSkew: tokenSkew, MessageWebhook: cfg.MessageWebhook, Limits: limits,
		ConnectTimeout: to.mqttConnect, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	ready := &atomic.Bool{}
	enrollments := dps.NewService(dpsStore, dps.Options{Auditor: auditLog, InitialTwinLimits: hubassign.InitialTwinLimits})
	api := httpapi.New(httpapi.Options{
		Logger:      log,
		Enrollments: enrollments,
		DPSAuth:     policyAuth(db, access.DPS, cfg.Hostnames),
		Registrar:   registrar,
		Hub:         hubSvc,
		HubAuth:     policyAuth(db, access.Hub, append([]string{cfg.HubHostName()}, cfg.Hostnames...)),
		RetryAfter:  retryAfterSeconds,
		Ready:       ready.Load,
		Limits:      limits,
		Metrics:     m,
		Audit:       auditLog,
	})
	web, err := console.New(console.Options{
		Logger: log, DPS: enrollments, Hub: hubSvc, Policies: db, IDScope: idScope, Endpoints: endpoints, Secret: consoleSecret,
	})
	if err != nil {
		return nil, err
	}
	var console http.Handler = web
	if m != nil {
		console = httpapi.Instrument(m, "console", web)
	}
	return &servers{
		log: log, tls: tlsConf, mqtt: mqttSrv, registrar: registrar, enrollments: enrollments, hub: hubSvc, ready: ready,
		bus: bus, presence: presence, settings: db, exclusive: exclusiveFor(db), maxConns: maxConns, metrics: m, audit: auditLog,
		https: &http.Server{
			Handler:           httpapi.WithBodyTimeout(withConsole(console, api), cmp.Or(to.body, 30*time.Second)),
			TLSConfig:         tlsConf,
			ReadHeaderTimeout: cmp.Or(to.readHeader, 10*time.Second),
			IdleTimeout:       cmp.Or(to.idle, 2*time.Minute),
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}, nil
}

// withConsole sends /console and everything under /console/ to the web
// console and every other request to the API, whose paths never start so.
func withConsole(web, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == console.Prefix || strings.HasPrefix(p, console.Prefix+"/") {
			web.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// run serves until ctx ends or a server fails, calling started once both
// listen; then it stops everything it started and waits for it.
func (s *servers) run(ctx context.Context, lns listeners, started func() error) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// Connections over --max-connections are closed before their TLS
	// handshake, so a flood of them costs the node next to nothing.
	httpsLn := throttle.LimitListener(lns.https, s.maxConns, (&rejectedConnections{log: s.log, listener: "https"}).reject)
	mqttLn := throttle.LimitListener(lns.mqtt, s.maxConns, (&rejectedConnections{log: s.log, listener: "mqtt"}).reject)
	httpsDone := make(chan error, 1)
	go func() { httpsDone <- s.https.Serve(tls.NewListener(httpsLn, s.tls)) }()
	mqttDone := make(chan error, 1)
	go func() { mqttDone <- s.mqtt.Serve(ctx, mqttLn) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); expireOperations(ctx, s.registrar, s.log) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.evaluateDeployments(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.audit.Run(ctx) }()
	if s.certs != nil {
		wg.Add(2)
		go func() { defer wg.Done(); s.certs.Watch(ctx) }()
		go func() { defer wg.Done(); reloadOnHangup(ctx, s.hangup, s.certs, s.log) }()
	}
	if lns.metrics != nil {
		wg.Add(1)
		go func() { defer wg.Done(); serveMetrics(ctx, lns.metrics, s.metrics, s.log) }()
	}
	s.ready.Store(true)

	var err error
	if err = started(); err == nil {
		select {
		case err = <-httpsDone:
			err = fmt.Errorf("https: %w", err)
			httpsDone <- nil
		case err = <-mqttDone:
			err = fmt.Errorf("mqtt: %w", err)
			mqttDone <- nil
		case <-ctx.Done():
			s.log.Info("shutting down")
		}
	}
	s.ready.Store(false)
	stop()
	if mErr := <-mqttDone; mErr != nil {
		s.log.Warn("stopping MQTT", "err", mErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if hErr := s.https.Shutdown(shutdownCtx); hErr != nil && !errors.Is(hErr, http.ErrServerClosed) && err == nil {
		err = hErr
	}
	<-httpsDone
	wg.Wait()
	s.audit.Flush(shutdownCtx) // refusals of requests that ended during shutdown
	return err
}

// Token and polling timing (dps-protocol.md §2.6, §3.2).
const (
	tokenSkew         = 5 * time.Minute
	retryAfterSeconds = 1
)

func policyAuth(db access.Store, scope access.Scope, audiences []string) *access.Authenticator {
	return &access.Authenticator{Store: db, Scope: scope, Now: time.Now, Skew: tokenSkew, Audiences: func() []string { return audiences }}
}

// expireOperations deletes finished registration operations after their
// time to live, hourly, until ctx ends.
func expireOperations(ctx context.Context, r *dps.Registrar, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := r.ExpireOperations(ctx); err != nil {
				log.Warn("expiring registration operations", "err", err)
			} else if n > 0 {
				log.Debug("expired registration operations", "count", n)
			}
		}
	}
}

// deploymentInterval is how often every configuration and IoT Edge
// deployment is re-evaluated besides the immediate runs on changes
// (hub-protocol.md §5.3).
const deploymentInterval = 5 * time.Minute

// evaluateDeployments re-evaluates deployments periodically until ctx
// ends; nodes sharing a store take turns, so each interval sees one pass.
func (s *servers) evaluateDeployments(ctx context.Context) {
	t := time.NewTicker(deploymentInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := deploymentPass(ctx, s.hub, s.settings, s.exclusive, time.Now); err != nil && ctx.Err() == nil {
				s.log.Warn("evaluating deployments", "err", err)
			}
		}
	}
}

// serverTLS returns the TLS configuration and the CA file clients should
// trust: the operator's certificate when given (as given), else the
// generated ECDSA and RSA ones (both roots in the CA file).
func serverTLS(cfg Config, now time.Time) (*tls.Config, string, error) {
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, "", fmt.Errorf("TLS certificate: %w", err)
		}
		return httpsTLS([]tls.Certificate{cert}), "", nil
	}
	m, err := pki.Ensure(filepath.Join(cfg.DataDir, "tls"), append(slices.Clone(cfg.Hostnames), cfg.HubHostName()), now)
	if err != nil {
		return nil, "", fmt.Errorf("TLS material: %w", err)
	}
	certs, err := m.Certificates()
	if err != nil {
		return nil, "", err
	}
	caFile := m.CAFile
	if abs, err := filepath.Abs(caFile); err == nil {
		caFile = abs
	}
	return httpsTLS(certs), caFile, nil
}

// loadTLS is the node's TLS configuration and CA file: shared through the
// store with PostgreSQL, else from the data directory or --tls-cert.
func loadTLS(ctx context.Context, db store, cfg Config, log *slog.Logger) (*tls.Config, string, error) {
	if cfg.Store == storePostgres {
		return sharedTLS(ctx, db, cfg, time.Now(), log)
	}
	return serverTLS(cfg, time.Now())
}

// generatedRefresh is how often generated TLS material is reloaded.
const generatedRefresh = 24 * time.Hour

// reloadableTLS makes conf serve its certificates through a reloader that
// loads them again as loadTLS does: --tls-cert/--tls-key are watched,
// generated material is refreshed daily, and every kind reloads on SIGHUP.
func reloadableTLS(ctx context.Context, db store, cfg Config, conf *tls.Config, poll time.Duration, log *slog.Logger) (*tlsreload.Reloader, error) {
	// Operator files are watched; generated material is reloaded daily,
	// which re-issues a server certificate near expiry (pki.Ensure) or picks
	// up one another node stored (sharedTLS).
	var files []string
	refresh := generatedRefresh
	if cfg.TLSCert != "" {
		files, refresh = []string{cfg.TLSCert, cfg.TLSKey}, 0
	}
	r, err := tlsreload.New(func() ([]tls.Certificate, error) {
		c, _, err := loadTLS(ctx, db, cfg, log)
		if err != nil {
			return nil, err
		}
		return c.Certificates, nil
	}, tlsreload.Options{Files: files, Interval: poll, Refresh: refresh, Logger: log, Initial: conf.Certificates})
	if err != nil {
		return nil, err
	}
	r.Apply(conf)
	return r, nil
}

// reloadOnHangup reloads the TLS certificates on every signal from hangup
// until ctx ends; a failure is logged by the reloader and changes nothing.
func reloadOnHangup(ctx context.Context, hangup <-chan os.Signal, certs *tlsreload.Reloader, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-hangup:
			log.Info("reloading the TLS certificate", "signal", sig.String())
			_ = certs.Reload()
		}
	}
}

// httpsTLS is pki.ServerConfig with HTTP/2 offered; the MQTT listener
// serves the same configuration without it.
func httpsTLS(certs []tls.Certificate) *tls.Config {
	conf := pki.ServerConfig(certs)
	conf.NextProtos = []string{"h2", "http/1.1"}
	return conf
}

// serveMetrics serves /metrics over plain HTTP on ln until ctx ends. A
// failure is logged: metrics are not worth stopping provisioning for.
func serveMetrics(ctx context.Context, ln net.Listener, m *metrics.Metrics, log *slog.Logger) {
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		log.Error("metrics listener failed; metrics are no longer served", "err", err)
		return
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-done
}

func printBanner(ctx context.Context, w io.Writer, db access.Store, idScope string, ep instance.Endpoints, metricsAddr string) error {
	owner, err := db.Policy(ctx, access.DPS, access.DPSOwner)
	if err != nil {
		return err
	}
	cs := sas.ConnectionString{HostName: ep.HostName(), SharedAccessKeyName: owner.Name, SharedAccessKey: owner.PrimaryKey}
	var b strings.Builder
	fmt.Fprintf(&b, "Usher is running.\n")
	fmt.Fprintf(&b, "  ID scope:          %s\n", idScope)
	fmt.Fprintf(&b, "  HTTPS:             https://%s%s (listening on %s)\n", ep.HostName(), portSuffix(ep.HTTPSAddr, "443"), ep.HTTPSAddr)
	fmt.Fprintf(&b, "  MQTT:              mqtts://%s%s (listening on %s)\n", ep.HostName(), portSuffix(ep.MQTTAddr, "8883"), ep.MQTTAddr)
	if metricsAddr != "" {
		fmt.Fprintf(&b, "  Metrics:           http://%s/metrics\n", metricsAddr)
	}
	if ep.CAFile != "" {
		fmt.Fprintf(&b, "  CA file:           %s\n", ep.CAFile)
	}
	fmt.Fprintf(&b, "  Service connection string:\n    %s\n", cs)
	_, err = io.WriteString(w, b.String())
	return err
}

// portSuffix renders ":port" unless it is the protocol's default.
func portSuffix(addr, def string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == def {
		return ""
	}
	return ":" + port
}

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/pki"
	"github.com/usher-iot/usher/internal/store/postgres"
)

// Settings that hold the TLS material nodes sharing a store share
// (docs/decisions/0012-multi-node.md): an ECDSA and an RSA pair.
const (
	settingTLSCA        = "tls_ca"
	settingTLSServer    = "tls_server"
	settingTLSRSACA     = "tls_ca_rsa"
	settingTLSRSAServer = "tls_server_rsa"
)

// sharedTLS is serverTLS for nodes sharing a store: the first node creates
// the CAs and the server certificates and stores them (first writer wins);
// the others load them. A node whose host names differ from a stored
// certificate's, or that finds it near expiry, re-issues it from the same
// CA and stores its own. Stores written before the RSA pair existed get it
// from the next node to start. Both CA certificates are also written to
// the data directory, for clients on this host.
func sharedTLS(ctx context.Context, st instance.Store, cfg Config, now time.Time, log *slog.Logger) (*tls.Config, string, error) {
	if cfg.TLSCert != "" {
		return serverTLS(cfg, now)
	}
	names := append(slices.Clone(cfg.Hostnames), cfg.HubHostName())
	var certs []tls.Certificate
	var cas []pki.PEM
	for _, p := range []struct {
		alg        pki.Algorithm
		ca, server string
	}{{pki.ECDSA, settingTLSCA, settingTLSServer}, {pki.RSA, settingTLSRSACA, settingTLSRSAServer}} {
		ca, cert, err := sharedPair(ctx, st, p.alg, p.ca, p.server, names, now, log)
		if err != nil {
			return nil, "", fmt.Errorf("TLS material: %w", err)
		}
		cas, certs = append(cas, ca), append(certs, cert)
	}
	caFile, err := writeCAFile(filepath.Join(cfg.DataDir, "tls"), pki.Bundle(cas...))
	if err != nil {
		return nil, "", fmt.Errorf("TLS material: %w", err)
	}
	return httpsTLS(certs), caFile, nil
}

// sharedPair loads (or creates) the CA stored under caKey and the server
// certificate stored under serverKey, re-issuing the latter when it does
// not cover names.
func sharedPair(ctx context.Context, st instance.Store, alg pki.Algorithm, caKey, serverKey string, names []string, now time.Time, log *slog.Logger) (pki.PEM, tls.Certificate, error) {
	ca, err := initPEM(ctx, st, caKey, func() (pki.PEM, error) { return pki.NewCA(alg, now) })
	if err != nil {
		return ca, tls.Certificate{}, err
	}
	issue := func() (pki.PEM, error) { return pki.IssueServer(ca, names, now) }
	server, err := initPEM(ctx, st, serverKey, issue)
	if err != nil {
		return ca, tls.Certificate{}, err
	}
	if !pki.Current(server, ca, names, now) {
		log.Warn("the stored server certificate does not cover this node's host names or is near expiry; issuing and storing a new one (give every node the same --hostname and --hub-hostname)", "algorithm", alg.String())
		if server, err = issue(); err != nil {
			return ca, tls.Certificate{}, err
		}
		if err := putPEM(ctx, st, serverKey, server); err != nil {
			return ca, tls.Certificate{}, err
		}
	}
	cert, err := tls.X509KeyPair(server.Cert, server.Key)
	if err != nil {
		return ca, tls.Certificate{}, fmt.Errorf("TLS certificate: %w", err)
	}
	return ca, cert, nil
}

// initPEM returns the material stored under key, creating it first when
// there is none (first writer wins).
func initPEM(ctx context.Context, st instance.Store, key string, create func() (pki.PEM, error)) (pki.PEM, error) {
	var p pki.PEM
	v, err := st.Setting(ctx, key)
	if fault.Is(err, fault.NotFound) {
		if p, err = create(); err != nil {
			return p, err
		}
		b, merr := json.Marshal(p)
		if merr != nil {
			return p, merr
		}
		v, err = st.InitSetting(ctx, key, string(b))
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return p, fmt.Errorf("decode %s: %w", key, err)
	}
	return p, nil
}

func putPEM(ctx context.Context, st instance.Store, key string, p pki.PEM) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return st.PutSetting(ctx, key, string(b))
}

// writeCAFile writes the CA certificates as dir/ca.pem (replacing it
// atomically; nodes on one host may share the directory) and returns its
// absolute path.
func writeCAFile(dir string, cert []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, pki.CAFile+".*.tmp")
	if err != nil {
		return "", err
	}
	_, werr := f.Write(cert)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write CA file: %v %v", werr, cerr)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	path := filepath.Join(dir, pki.CAFile)
	if err := os.Rename(f.Name(), path); err != nil {
		return "", err
	}
	return filepath.Abs(path)
}

// deploymentLock is the advisory lock key of the periodic deployment pass
// ("usherdp" in ASCII).
const deploymentLock = 0x75736865726470

// settingDeploymentsEvaluated records when the last periodic pass ran,
// so nodes sharing a store run it once per interval between them.
const settingDeploymentsEvaluated = "deployments_evaluated_at"

// exclusiveRunner runs periodic work on one node at a time.
type exclusiveRunner func(ctx context.Context, fn func(context.Context) error) (bool, error)

// exclusiveFor returns the runner for db: PostgreSQL's advisory lock, or
// simply running fn for a store only one process opens.
func exclusiveFor(db store) exclusiveRunner {
	if pg, ok := db.(*postgres.DB); ok {
		return func(ctx context.Context, fn func(context.Context) error) (bool, error) {
			return pg.Exclusive(ctx, deploymentLock, fn)
		}
	}
	return func(ctx context.Context, fn func(context.Context) error) (bool, error) { return true, fn(ctx) }
}

// deploymentPass runs one periodic evaluation unless another node holds
// the lock or ran one less than most of an interval ago.
func deploymentPass(ctx context.Context, h *hub.Service, st instance.Store, exclusive exclusiveRunner, now func() time.Time) (bool, error) {
	ran := false
	_, err := exclusive(ctx, func(ctx context.Context) error {
		if v, err := st.Setting(ctx, settingDeploymentsEvaluated); err == nil {
			if last, perr := time.Parse(time.RFC3339Nano, v); perr == nil && now().Sub(last) < deploymentInterval*9/10 {
				return nil
			}
		} else if !fault.Is(err, fault.NotFound) {
			return err
		}
		ran = true
		if err := h.EvaluateDeployments(ctx); err != nil {
			return err
		}
		return st.PutSetting(ctx, settingDeploymentsEvaluated, now().UTC().Format(time.RFC3339Nano))
	})
	return ran, err
}

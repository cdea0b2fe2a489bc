package main

// Seed files (emulator mode): `usher serve --seed FILE` applies one at every
// start; `usher seed check FILE` validates one without a server. The
// format and its semantics are in docs/seed.md.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/seed"
)

func seedCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Seed files: declare policies, enrollments, groups and deployments for `usher serve --seed`",
		Long: `A seed file is a YAML (or JSON) document that declares DPS and hub shared
access policies, individual enrollments, enrollment groups and hub
configurations (IoT Edge deployments). ` + "`usher serve --seed FILE`" + ` applies it at
every start, before serving: what is missing is created, what differs is
updated, what is equal is left alone, and records the file does not name
are not touched. Keys given in the file are used as given; keys left out
are generated once and kept. See docs/seed.md for the format.`,
	}
	check := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate seed files without a server; print what each declares",
		Long: `Parse and validate each seed file exactly as ` + "`usher serve --seed`" + ` does
before it writes anything, and print a one-line summary of each. Every
problem is reported with its line and column; the command fails when a
file has any.`,
		Example: `  usher seed check examples/seed.yaml`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, path := range args {
				f, err := loadSeed(path)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(e.stdout, "%s: ok: %d DPS policies, %d hub policies, %d enrollments, %d enrollment groups, %d configurations\n",
					path, len(f.DPSPolicies), len(f.HubPolicies), len(f.Enrollments), len(f.Groups), len(f.Configurations))
			}
			return errors.Join(errs...)
		},
	}
	cmd.AddCommand(check)
	return cmd
}

// loadSeed reads and validates the seed file at path; nil without one.
func loadSeed(path string) (*seed.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seed file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, seed.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("seed file: %w", err)
	}
	return seed.Parse(path, data)
}

// applySeed applies a parsed seed file through the servers' services (nil
// applies nothing), logs what changed, and records policy changes in the
// audit log; enrollment and group changes are recorded by the enrollment
// service itself, with the seed file as their origin.
func applySeed(ctx context.Context, f *seed.File, s *servers, db store, log *slog.Logger) error {
	if f == nil {
		return nil
	}
	ctx = dps.WithOrigin(ctx, dps.Origin{Transport: "seed", Actor: "seed file " + f.Name})
	changes, err := seed.Apply(ctx, f, seed.Targets{
		Policies:       db,
		Enrollments:    s.enrollments,
		Configurations: s.hub,
	})
	counts := map[seed.Action]int{}
	for _, c := range changes {
		counts[c.Action]++
		if c.Action == seed.Unchanged {
			continue
		}
		level := slog.LevelDebug // the summary below says how many
		if c.Action == seed.Replaced {
			level = slog.LevelInfo // devices lose the deployment until it applies again
		}
		log.Log(ctx, level, "seed file: "+string(c.Action), "kind", c.Kind, "id", c.ID)
		if c.Kind == seed.KindDPSPolicy || c.Kind == seed.KindHubPolicy {
			scope := access.DPS
			if c.Kind == seed.KindHubPolicy {
				scope = access.Hub
			}
			action := audit.Update
			if c.Action == seed.Created {
				action = audit.Create
			}
			if aErr := s.audit.Record(ctx, audit.Entry{Kind: audit.Policy, Action: action, Subject: c.ID, Scope: string(scope), Detail: c.Detail}); aErr != nil {
				log.Error("audit: recording a seeded policy failed", "policy", c.ID, "err", aErr)
			}
		}
	}
	if err != nil {
		return err
	}
	log.Info("seed file applied", "file", f.Name, "created", counts[seed.Created], "updated", counts[seed.Updated]+counts[seed.Replaced], "unchanged", counts[seed.Unchanged])
	return nil
}

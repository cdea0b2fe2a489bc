package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/wire"
)

// defaultAuditTop is how many entries `usher audit` shows without --top.
const defaultAuditTop = 100

func auditCommand(e *env) *cobra.Command {
	c := newDPSCLI(e)
	var q client.AuditQuery
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit [--since DURATION|TIME] [--kind KIND] [--registration-id ID] [--top N] [--json]",
		Short: "Show the audit log: enrollment, group, policy and hub changes and refused devices",
		Long: `Show Usher's audit log, newest first: every create, update and delete of an
individual enrollment, an enrollment group or a shared access policy, and
every change made through the hub's service API to devices, modules, twins
(tags and desired properties) and configurations (who, what, when, etags
before and after), and every device registration that was refused, with
the reason in plain words. What devices do themselves (reported
properties) and what the hub does on its own (provisioning, deployments)
is not recorded. Devices are only ever told Azure's
generic 401; the reason here is for the operator. The tracking ID is the
trackingId of the error the device got, and appears in the server's log line
for that request. Entries never hold key material.

The log is read through GET /audit of the DPS service API, an Usher
extension that needs a policy with the ServiceConfig right. The server keeps
entries for --audit-max-age (90 days by default) and at most
--audit-max-entries (a million) of them.

` + connectionHelp,
		Example: `  usher audit
  usher audit --since 24h --kind attestation
  usher audit --kind twin --registration-id sensor-0042
  usher audit --registration-id dev-001 --json
  usher audit --since 2026-11-25T00:00:00Z --top 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.Kind != "" {
				k, ok := audit.ParseKind(q.Kind)
				if !ok {
					return fmt.Errorf("--kind %q is not one of %s", q.Kind, audit.KindNames())
				}
				q.Kind = string(k)
			}
			if q.Top < 1 {
				return fmt.Errorf("--top must be at least 1")
			}
			top := q.Top
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				entries, err := allPages(ctx, top, func(ctx context.Context, size int, cont string) ([]wire.AuditEntry, string, error) {
					page := q
					page.Top = min(size, audit.MaxPage)
					return cl.Audit(ctx, page, cont)
				})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(e, entries)
				}
				return writeTable(e.stdout, auditTable(entries))
			})
		},
	}
	c.conn.register(cmd.Flags())
	fs := cmd.Flags()
	fs.StringVar(&q.Since, "since", "", "only entries since this time: a duration before now (90m, 24h) or an RFC 3339 time")
	fs.StringVar(&q.Kind, "kind", "", "only entries of this kind: "+audit.KindNames())
	fs.StringVar(&q.RegistrationID, "registration-id", "", "only entries about this registration ID (or group ID, policy name, device ID, device/module, or configuration ID)")
	fs.IntVar(&q.Top, "top", defaultAuditTop, "show at most this many entries")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// auditTable shows entries in columns: what happened, to what, by whom
// (the policy, or the device's address), and how.
func auditTable(entries []wire.AuditEntry) table {
	t := table{header: []string{"Time", "Kind", "Action", "Subject", "Who", "Via", "Detail", "TrackingId"}}
	for _, e := range entries {
		who := e.Actor
		if who == "" {
			who = e.SourceAddress
		}
		t.rows = append(t.rows, []string{e.TimestampUTC, e.Kind, e.Action, e.Subject, who, e.Transport, auditDetail(e), e.TrackingID})
	}
	return t
}

func auditDetail(e wire.AuditEntry) string {
	if e.Reason != "" {
		if e.Scope != "" {
			return e.Reason + " (ID scope " + e.Scope + ")"
		}
		return e.Reason
	}
	var parts []string
	if e.Scope != "" {
		parts = append(parts, "scope "+e.Scope)
	}
	if e.Detail != "" {
		parts = append(parts, e.Detail)
	}
	switch {
	case e.ETagBefore != "" && e.ETagAfter != "":
		parts = append(parts, "etag "+e.ETagBefore+" → "+e.ETagAfter)
	case e.ETagAfter != "":
		parts = append(parts, "etag "+e.ETagAfter)
	case e.ETagBefore != "":
		parts = append(parts, "etag was "+e.ETagBefore)
	}
	return strings.Join(parts, ", ")
}

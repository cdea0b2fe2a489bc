package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/sas"
)

// policyView is how the CLI shows a policy.
type policyView struct {
	Name                      string   `json:"keyName"`
	Rights                    []string `json:"rights"`
	PrimaryKey                string   `json:"primaryKey"`
	SecondaryKey              string   `json:"secondaryKey"`
	PrimaryConnectionString   string   `json:"primaryConnectionString"`
	SecondaryConnectionString string   `json:"secondaryConnectionString"`
}

func policyCommand(e *env) *cobra.Command {
	var dataDir string
	var hub bool
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage shared access policies of DPS (or, with --hub, of the built-in hub)",
		Long: `Create, list, show, delete and renew the keys of shared access policies.
DPS rights: ServiceConfig, EnrollmentRead, EnrollmentWrite,
RegistrationStatusRead, RegistrationStatusWrite.
Hub rights (--hub): RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect.
Works on the local data directory (Azure does this through its management
plane); a running server sees changes at once.`,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "", "data directory (env USHER_DATA_DIR; default ./usher-data)")
	cmd.PersistentFlags().BoolVar(&hub, "hub", false, "manage the built-in IoT Hub's policies instead of DPS's")
	scope := func() access.Scope {
		if hub {
			return access.Hub
		}
		return access.DPS
	}
	var where storeFlags
	where.register(cmd.PersistentFlags())
	with := func(cmd *cobra.Command, fn func(context.Context, access.Store, string) error) error {
		loc := where.locate(dataDir, e)
		db, err := openLocated(cmd.Context(), loc)
		if err != nil {
			return err
		}
		defer db.Close()
		info, err := readStoreInfo(cmd.Context(), loc)
		if err != nil {
			return err
		}
		return fn(cmd.Context(), db, info.HostName)
	}
	show := func(p access.Policy, host string) error {
		return printJSON(e, viewPolicy(p, host))
	}

	var rights []string
	create := &cobra.Command{
		Use:   "create NAME --rights R[,R…]",
		Short: "Create a policy with freshly generated keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return with(cmd, func(ctx context.Context, db access.Store, host string) error {
				r, err := access.ParseRights(scope(), rights)
				if err != nil {
					return err
				}
				p, err := access.NewPolicy(scope(), args[0], r)
				if err != nil {
					return err
				}
				if err := db.CreatePolicy(ctx, p); err != nil {
					return err
				}
				if err := auditPolicy(ctx, e, db, p.Scope, p.Name, audit.Create, "rights "+p.Rights.String()); err != nil {
					return err
				}
				return show(p, host)
			})
		},
	}
	create.Flags().StringSliceVar(&rights, "rights", nil, "rights to grant, comma separated (required)")
	_ = create.MarkFlagRequired("rights")

	list := &cobra.Command{
		Use:   "list",
		Short: "List policies with their rights (keys not shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return with(cmd, func(ctx context.Context, db access.Store, _ string) error {
				ps, err := db.Policies(ctx, scope())
				if err != nil {
					return err
				}
				out := make([]map[string]any, len(ps))
				for i, p := range ps {
					out[i] = map[string]any{"keyName": p.Name, "rights": p.Rights.Names()}
				}
				return printJSON(e, out)
			})
		},
	}
	showCmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a policy with its keys and connection strings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return with(cmd, func(ctx context.Context, db access.Store, host string) error {
				p, err := db.Policy(ctx, scope(), args[0])
				if err != nil {
					return err
				}
				return show(p, host)
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy; tokens signed with its keys stop working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return with(cmd, func(ctx context.Context, db access.Store, _ string) error {
				if strings.EqualFold(args[0], access.DPSOwner) && scope() == access.DPS || strings.EqualFold(args[0], access.HubOwner) && scope() == access.Hub {
					return fmt.Errorf("%s is the owner policy that usher info and the banner rely on; renew its keys instead", args[0])
				}
				if err := db.DeletePolicy(ctx, scope(), args[0]); err != nil {
					return err
				}
				return auditPolicy(ctx, e, db, scope(), args[0], audit.Delete, "")
			})
		},
	}
	var key string
	renew := &cobra.Command{
		Use:   "renew-key NAME --key primary|secondary|swap",
		Short: "Regenerate a policy key (or swap the two)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return with(cmd, func(ctx context.Context, db access.Store, host string) error {
				p, err := db.Policy(ctx, scope(), args[0])
				if err != nil {
					return err
				}
				if err := renewKey(&p, key); err != nil {
					return err
				}
				if err := db.UpdatePolicy(ctx, p); err != nil {
					return err
				}
				if err := auditPolicy(ctx, e, db, p.Scope, p.Name, audit.Update, renewedDetail(key)); err != nil {
					return err
				}
				return show(p, host)
			})
		},
	}
	renew.Flags().StringVar(&key, "key", "primary", "which key: primary, secondary or swap")
	cmd.AddCommand(create, list, showCmd, del, renew)
	return cmd
}

// auditPolicy records a policy change made through the local store in
// the audit log. The caller is no policy but whoever could open the store:
// the operating system user.
func auditPolicy(ctx context.Context, e *env, db access.Store, scope access.Scope, name, action, detail string) error {
	st, ok := db.(audit.Store)
	if !ok {
		return nil
	}
	user := e.getenv("USER")
	if user == "" {
		user = "unknown user"
	}
	err := audit.New(st, audit.Options{}).Record(ctx, audit.Entry{Kind: audit.Policy, Action: action, Subject: name, Scope: string(scope),
		Actor: "local:" + user, Transport: "cli", Detail: detail})
	if err != nil {
		return fmt.Errorf("the policy was changed, but recording it in the audit log failed: %w", err)
	}
	return nil
}

// renewedDetail describes a key renewal for the audit log.
func renewedDetail(which string) string {
	if strings.EqualFold(which, "swap") {
		return "swapped the primary and secondary keys"
	}
	return "renewed the " + strings.ToLower(which) + " key"
}

func renewKey(p *access.Policy, which string) error {
	switch strings.ToLower(which) {
	case "swap":
		p.PrimaryKey, p.SecondaryKey = p.SecondaryKey, p.PrimaryKey
		return nil
	case "primary", "secondary":
		k, err := sas.NewKey(32)
		if err != nil {
			return err
		}
		if strings.EqualFold(which, "primary") {
			p.PrimaryKey = k
		} else {
			p.SecondaryKey = k
		}
		return nil
	}
	return fmt.Errorf("--key %q is not primary, secondary or swap", which)
}

func viewPolicy(p access.Policy, host string) policyView {
	cs := func(k string) string {
		return sas.ConnectionString{HostName: host, SharedAccessKeyName: p.Name, SharedAccessKey: k}.String()
	}
	return policyView{Name: p.Name, Rights: p.Rights.Names(), PrimaryKey: p.PrimaryKey, SecondaryKey: p.SecondaryKey,
		PrimaryConnectionString: cs(p.PrimaryKey), SecondaryConnectionString: cs(p.SecondaryKey)}
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

package main

// `usher enrollment-group …` mirrors `az iot dps enrollment-group …`. az
// names the group with --enrollment-id; Usher's canonical name is
// --group-id, and --enrollment-id, --eid and --gid are accepted as aliases,
// as az accepts --group-id and --gid.

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// groupAliases are az's alternative flag names for the group commands.
var groupAliases = withAliases(map[string]string{
	"enrollment-id": "group-id", "eid": "group-id", "gid": "group-id",
	"rid": "registration-id", "symmetric-key": "key",
})

func groupCommand(e *env) *cobra.Command {
	c := newDPSCLI(e)
	cmd := &cobra.Command{
		Use:   "enrollment-group",
		Short: "Manage enrollment groups (az iot dps enrollment-group)",
		Long: `Create, show, list, update and delete enrollment groups, compute the keys of
their devices, and list, show or delete their devices' registration records,
through the DPS service API, as ` + "`az iot dps enrollment-group`" + ` does against
Azure.

` + connectionHelp,
	}
	c.register(cmd)
	cmd.SetGlobalNormalizationFunc(groupAliases)
	cmd.AddCommand(
		groupCreateCommand(c),
		groupShowCommand(c),
		groupListCommand(c),
		groupUpdateCommand(c),
		groupDeleteCommand(c),
		computeDeviceKeyCommand(c),
		groupRegistrationCommand(c),
		groupEdgeConfigCommand(c),
	)
	return cmd
}

const groupIDUsage = "ID of the enrollment group (aliases --enrollment-id, --eid, --gid)"

func groupCreateCommand(c *dpsCLI) *cobra.Command {
	var id string
	var s settingsFlags
	cmd := &cobra.Command{
		Use:   "create --group-id ID [flags]",
		Short: "Create an enrollment group (symmetric key; keys are generated unless given)",
		Example: `  usher enrollment-group create --group-id sensors
  usher enrollment-group create --group-id sensors --initial-twin-tags @tags.json --edge-enabled --show-keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g := wire.EnrollmentGroup{EnrollmentGroupID: id}
			if err := s.applyCreate(cmd.Flags(), &g.EnrollmentSettings); err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				out, err := cl.PutGroup(ctx, g, "")
				if err != nil {
					return err
				}
				return c.printGroup(out, s.showKeys)
			})
		},
	}
	idFlag(cmd, &id, "group-id", groupIDUsage)
	s.register(cmd.Flags(), forCreate, forGroup)
	return cmd
}

func groupShowCommand(c *dpsCLI) *cobra.Command {
	var id string
	var showKeys bool
	cmd := &cobra.Command{
		Use:   "show --group-id ID",
		Short: "Show an enrollment group (keys only with --show-keys)",
		Example: `  usher enrollment-group show --group-id sensors
  usher enrollment-group show --group-id sensors --show-keys -o table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				g, err := withKeys(ctx, id, showKeys, cl.Group, cl.GroupAttestation, func(g *wire.EnrollmentGroup) *wire.AttestationMechanism { return g.Attestation })
				if err != nil {
					return err
				}
				return c.printGroup(g, showKeys)
			})
		},
	}
	idFlag(cmd, &id, "group-id", groupIDUsage)
	showKeysFlag(cmd.Flags(), &showKeys)
	return cmd
}

func groupListCommand(c *dpsCLI) *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:   "list [--top N] [--where CONDITION]",
		Short: "List enrollment groups, keys masked",
		Example: `  usher enrollment-group list
  usher enrollment-group list --where "provisioningStatus = 'disabled'" -o table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := l.check(); err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				q := l.query("enrollmentGroups")
				items, err := allPages(ctx, l.top, func(ctx context.Context, size int, cont string) ([]wire.EnrollmentGroup, string, error) {
					return cl.QueryGroups(ctx, q, size, cont)
				})
				if err != nil {
					return err
				}
				return c.print(items, func() table { return groupTable(items...) })
			})
		},
	}
	l.register(cmd.Flags(), true)
	return cmd
}

func groupUpdateCommand(c *dpsCLI) *cobra.Command {
	var id string
	var s settingsFlags
	cmd := &cobra.Command{
		Use:   "update --group-id ID [flags]",
		Short: "Change an enrollment group; what no flag names is kept, keys included",
		Example: `  usher enrollment-group update --group-id sensors --initial-twin-properties '{"interval":30}'
  usher enrollment-group update --group-id sensors --primary-key "$NEW_KEY" --etag '"3f2a…"'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := s.checkUpdate(cmd.Flags()); err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				g, err := withKeys(ctx, id, true, cl.Group, cl.GroupAttestation, func(g *wire.EnrollmentGroup) *wire.AttestationMechanism { return g.Attestation })
				if err != nil {
					return err
				}
				if err := s.applyUpdate(cmd.Flags(), &g.EnrollmentSettings); err != nil {
					return err
				}
				out, err := cl.PutGroup(ctx, g, s.ifMatch(g.ETag))
				if err != nil {
					return err
				}
				return c.printGroup(out, s.showKeys)
			})
		},
	}
	idFlag(cmd, &id, "group-id", groupIDUsage)
	s.register(cmd.Flags(), forUpdate, forGroup)
	return cmd
}

func groupDeleteCommand(c *dpsCLI) *cobra.Command {
	var id, etag string
	cmd := &cobra.Command{
		Use:     "delete --group-id ID [--etag ETAG]",
		Short:   "Delete an enrollment group (its devices' registration records stay)",
		Example: `  usher enrollment-group delete --group-id sensors`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				return cl.DeleteGroup(ctx, id, etag)
			})
		},
	}
	idFlag(cmd, &id, "group-id", groupIDUsage)
	etagFlag(cmd.Flags(), &etag)
	return cmd
}

func computeDeviceKeyCommand(c *dpsCLI) *cobra.Command {
	var groupID, key, regID string
	cmd := &cobra.Command{
		Use:   "compute-device-key --registration-id R (--group-id G | --key K)",
		Short: "Derive a device's key from its enrollment group's key (offline with --key)",
		Long: `Derive the symmetric key a device of an enrollment group signs with:
base64(HMAC-SHA256(group key, registration ID)). With --key the group key is
given and nothing is contacted; with --group-id the group's primary key is
fetched from the DPS.`,
		Example: `  usher enrollment-group compute-device-key --key "$GROUP_KEY" --registration-id sensor-042
  usher enrollment-group compute-device-key --group-id sensors --registration-id sensor-042 -o table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case key != "" && groupID != "":
				return errors.New("give --group-id or --key, not both")
			case key == "" && groupID == "":
				return errors.New("give --group-id (the key is fetched from the DPS) or --key (the group's key)")
			}
			if key == "" {
				err := c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
					a, err := cl.GroupAttestation(ctx, groupID)
					if err != nil {
						return err
					}
					if !isSymmetric(&a) || a.SymmetricKey == nil || a.SymmetricKey.PrimaryKey == nil {
						return fmt.Errorf("enrollment group %q uses %s attestation; compute-device-key needs a symmetric key group", groupID, a.Type)
					}
					key = *a.SymmetricKey.PrimaryKey
					return nil
				})
				if err != nil {
					return err
				}
			}
			derived, err := sas.DeriveDeviceKey(key, regID)
			if err != nil {
				return err
			}
			return c.print(derived, func() table { return resultTable(derived) })
		},
	}
	cmd.Flags().StringVar(&groupID, "group-id", "", groupIDUsage)
	cmd.Flags().StringVar(&key, "key", "", "the enrollment group's symmetric key, base64 (alias --symmetric-key)")
	idFlag(cmd, &regID, "registration-id", "registration ID of the device (alias --rid)")
	return cmd
}

func (c *dpsCLI) printGroup(g wire.EnrollmentGroup, showKeys bool) error {
	if !showKeys {
		maskKeys(g.Attestation)
	}
	return c.print(g, func() table { return groupTable(g) })
}

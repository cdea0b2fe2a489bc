package main

// Registration records, as `az iot dps enrollment registration …` and
// `az iot dps enrollment-group registration …` manage them: a record is
// what DPS remembers of a device's last registration (assigned hub, device
// ID, status). Deleting one makes the device's next registration an
// initial assignment; it does not touch the enrollment or the hub device.

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/wire"
)

// enrollmentRegistrationCommand is `usher enrollment registration`: the
// record of an individual enrollment's device, named by the enrollment ID.
func enrollmentRegistrationCommand(c *dpsCLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registration",
		Short: "Show or delete the registration record of an individual enrollment's device",
	}
	cmd.AddCommand(
		registrationShowCommand(c, "enrollment-id", "ID of the individual enrollment (alias --eid)",
			`  usher enrollment registration show --enrollment-id dev-001`),
		registrationDeleteCommand(c, "enrollment-id", "ID of the individual enrollment (alias --eid)",
			`  usher enrollment registration delete --enrollment-id dev-001`),
	)
	return cmd
}

// groupRegistrationCommand is `usher enrollment-group registration`: the
// records of the devices that registered through a group.
func groupRegistrationCommand(c *dpsCLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registration",
		Short: "List, show or delete the registration records of an enrollment group's devices",
	}
	cmd.AddCommand(
		groupRegistrationListCommand(c),
		registrationShowCommand(c, "registration-id", "registration ID of the device (alias --rid)",
			`  usher enrollment-group registration show --registration-id sensor-042`),
		registrationDeleteCommand(c, "registration-id", "registration ID of the device (alias --rid)",
			`  usher enrollment-group registration delete --registration-id sensor-042`),
	)
	return cmd
}

func groupRegistrationListCommand(c *dpsCLI) *cobra.Command {
	var groupID string
	var l listFlags
	cmd := &cobra.Command{
		Use:   "list --group-id ID [--top N]",
		Short: "List the registration records of the devices of an enrollment group",
		Example: `  usher enrollment-group registration list --group-id sensors
  usher enrollment-group registration list --group-id sensors --top 50 -o table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := l.check(); err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				items, err := allPages(ctx, l.top, func(ctx context.Context, size int, cont string) ([]wire.DeviceRegistrationState, string, error) {
					return cl.GroupRegistrations(ctx, groupID, "", size, cont)
				})
				if err != nil {
					return err
				}
				return c.print(items, func() table { return registrationTable(items...) })
			})
		},
	}
	idFlag(cmd, &groupID, "group-id", groupIDUsage)
	l.register(cmd.Flags(), false)
	return cmd
}

func registrationShowCommand(c *dpsCLI, idName, idUsage, example string) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:     "show --" + idName + " ID",
		Short:   "Show a device's registration record",
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				r, err := cl.Registration(ctx, id)
				if err != nil {
					return err
				}
				return c.print(r, func() table { return registrationTable(r) })
			})
		},
	}
	idFlag(cmd, &id, idName, idUsage)
	return cmd
}

func registrationDeleteCommand(c *dpsCLI, idName, idUsage, example string) *cobra.Command {
	var id, etag string
	cmd := &cobra.Command{
		Use:     "delete --" + idName + " ID [--etag ETAG]",
		Short:   "Delete a device's registration record; its next registration starts afresh",
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				return cl.DeleteRegistration(ctx, id, etag)
			})
		},
	}
	idFlag(cmd, &id, idName, idUsage)
	etagFlag(cmd.Flags(), &etag)
	return cmd
}

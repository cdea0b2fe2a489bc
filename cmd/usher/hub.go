package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/client"
)

// hubCLI is what every `usher hub …` command shares: where the hub is and
// how to print its answers (the hub's own JSON, as az prints it).
type hubCLI struct {
	e    *env
	conn connFlags
}

func hubCommand(e *env) *cobra.Command {
	c := &hubCLI{e: e}
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Manage the built-in IoT hub: devices, twins, deployments, queries, direct methods",
		Long: `Talk to the built-in IoT hub's service API, as az iot hub / az iot edge do
against Azure IoT Hub (the same commands work against Azure given its
connection string).

The hub is found, first match wins: --login (or --connection-string), a hub
connection string (HostName=…;SharedAccessKeyName=iothubowner;…), dialled at
its HostName on port 443 or at --address; --data-dir, the data directory of a
local usher serve (its iothubowner connection string, CA and address);
USHER_HUB_CONNECTION_STRING; USHER_DATA_DIR, else ./usher-data.`,
	}
	fs := cmd.PersistentFlags()
	c.conn.register(fs)
	fs.Lookup("login").Usage = "hub connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…); env USHER_HUB_CONNECTION_STRING"
	cmd.AddCommand(c.deviceCommand(), c.twinCommand(), c.deploymentCommand(), c.queryCommand(), c.methodCommand(), c.messagesCommand())
	return cmd
}

func (c *hubCLI) with(cmd *cobra.Command, fn func(context.Context, *client.Client) (json.RawMessage, error)) error {
	cl, err := c.conn.dialHub(cmd.Context(), c.e)
	if err != nil {
		return err
	}
	out, err := fn(cmd.Context(), cl)
	if err != nil || out == nil {
		return err
	}
	return printJSON(c.e, out)
}

func (c *hubCLI) deviceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Device identities (az iot hub device-identity)"}
	var id, status, primary, secondary, etag string
	var edge bool
	var top int
	create := &cobra.Command{
		Use:     "create --device-id ID [--edge-enabled] [--primary-key K --secondary-key K] [--status enabled|disabled]",
		Short:   "Create a device identity with symmetric keys (generated unless given)",
		Example: "  usher hub device create --device-id sensor-1\n  usher hub device create --device-id gateway-1 --edge-enabled",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return cl.PutHubDevice(ctx, id, deviceBody(id, status, primary, secondary, edge), "")
			})
		},
	}
	create.Flags().BoolVar(&edge, "edge-enabled", false, "an IoT Edge device ($edgeAgent and $edgeHub modules are created; alias --ee)")
	create.Flags().StringVar(&primary, "primary-key", "", "primary symmetric key (base64); generated when omitted")
	create.Flags().StringVar(&secondary, "secondary-key", "", "secondary symmetric key (base64); generated when omitted")
	create.Flags().StringVar(&status, "status", "enabled", "enabled or disabled")
	show := &cobra.Command{
		Use: "show --device-id ID", Short: "Show a device identity (with its keys)", Args: cobra.NoArgs,
		Example: "  usher hub device show --device-id sensor-1",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) { return cl.HubDevice(ctx, id) })
		},
	}
	list := &cobra.Command{
		Use: "list [--top N]", Short: "List device identities", Args: cobra.NoArgs,
		Example: "  usher hub device list --top 100",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) { return cl.HubDevices(ctx, top) })
		},
	}
	list.Flags().IntVar(&top, "top", 1000, "at most this many devices (max 1000)")
	update := &cobra.Command{
		Use: "update --device-id ID --status enabled|disabled [--etag E]", Short: "Enable or disable a device (disabling disconnects it)", Args: cobra.NoArgs,
		Example: "  usher hub device update --device-id sensor-1 --status disabled",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				raw, err := cl.HubDevice(ctx, id)
				if err != nil {
					return nil, err
				}
				var d map[string]any
				if err := json.Unmarshal(raw, &d); err != nil {
					return nil, err
				}
				d["status"] = status
				ifMatch := etag
				if ifMatch == "" {
					ifMatch = fmt.Sprint(`"`, d["etag"], `"`)
				}
				return cl.PutHubDevice(ctx, id, d, ifMatch)
			})
		},
	}
	update.Flags().StringVar(&status, "status", "", "enabled or disabled")
	_ = update.MarkFlagRequired("status")
	del := &cobra.Command{
		Use: "delete --device-id ID [--etag E]", Short: "Delete a device identity, its modules and twins", Args: cobra.NoArgs,
		Example: "  usher hub device delete --device-id sensor-1",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return nil, cl.DeleteHubDevice(ctx, id, etag)
			})
		},
	}
	for _, sub := range []*cobra.Command{create, show, update, del} {
		idFlag(sub, &id, "device-id", "device ID (alias -d)")
	}
	for _, sub := range []*cobra.Command{update, del} {
		etagFlag(sub.Flags(), &etag)
	}
	cmd.AddCommand(create, show, list, update, del)
	return cmd
}

func deviceBody(id, status, primary, secondary string, edge bool) map[string]any {
	return map[string]any{
		"deviceId": id, "status": status, "capabilities": map[string]any{"iotEdge": edge},
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": primary, "secondaryKey": secondary}},
	}
}

func (c *hubCLI) twinCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "twin", Short: "Device and module twins (az iot hub device-twin / module-twin)"}
	var id, moduleID, desired, tags, etag string
	show := &cobra.Command{
		Use: "show --device-id ID [--module-id M]", Short: "Show a device or module twin", Args: cobra.NoArgs,
		Example: "  usher hub twin show --device-id sensor-1\n  usher hub twin show --device-id gateway-1 --module-id '$edgeAgent'",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return cl.HubTwin(ctx, id, moduleID)
			})
		},
	}
	update := &cobra.Command{
		Use: "update --device-id ID [--module-id M] [--desired JSON|@file] [--tags JSON|@file] [--etag E]", Short: "Merge-patch a twin's desired properties and tags (null deletes)", Args: cobra.NoArgs,
		Example: `  usher hub twin update --device-id sensor-1 --desired '{"interval":30}'
  usher hub twin update --device-id sensor-1 --tags '{"environment":"prod"}'`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			patch := map[string]any{}
			if cmd.Flags().Changed("tags") {
				t, err := jsonObject("tags", tags)
				if err != nil {
					return err
				}
				patch["tags"] = t
			}
			if cmd.Flags().Changed("desired") {
				d, err := jsonObject("desired", desired)
				if err != nil {
					return err
				}
				patch["properties"] = map[string]any{"desired": d}
			}
			if len(patch) == 0 {
				return fmt.Errorf("nothing to update: give --desired and/or --tags")
			}
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return cl.PatchHubTwin(ctx, id, moduleID, patch, etag)
			})
		},
	}
	update.Flags().StringVar(&desired, "desired", "", "desired properties patch: JSON object or @file")
	update.Flags().StringVar(&tags, "tags", "", "tags patch: JSON object or @file")
	etagFlag(update.Flags(), &etag)
	for _, sub := range []*cobra.Command{show, update} {
		idFlag(sub, &id, "device-id", "device ID")
		sub.Flags().StringVar(&moduleID, "module-id", "", "module ID, for a module twin")
	}
	cmd.AddCommand(show, update)
	return cmd
}

func (c *hubCLI) deploymentCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "deployment", Short: "IoT Edge automatic deployments and device configurations (az iot edge deployment)"}
	var id, content, target, labels, metrics, etag string
	var priority, top int
	create := &cobra.Command{
		Use:   "create --deployment-id ID --content JSON|@file --target-condition C [--priority N] [--labels JSON] [--metrics JSON|@file]",
		Short: "Create a deployment that targets devices by twin tags",
		Example: `  usher hub deployment create --deployment-id base --content @deployment.json \
    --target-condition "tags.environment='test'" --priority 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := deploymentBody(id, content, target, labels, metrics, priority)
			if err != nil {
				return err
			}
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return cl.PutConfiguration(ctx, id, body, "")
			})
		},
	}
	create.Flags().StringVar(&content, "content", "", "deployment content: {\"modulesContent\":…} (or {\"content\":{…}}, or deviceContent), JSON or @file")
	create.Flags().StringVar(&target, "target-condition", "", "which devices: a twin query condition such as tags.environment='test', or *")
	create.Flags().IntVar(&priority, "priority", 0, "higher wins where deployments overlap")
	create.Flags().StringVar(&labels, "labels", "", "labels: JSON object of strings")
	create.Flags().StringVar(&metrics, "metrics", "", "custom metrics: {\"queries\":{name:query}}, JSON or @file")
	_ = create.MarkFlagRequired("content")
	_ = create.MarkFlagRequired("target-condition")
	show := &cobra.Command{
		Use: "show --deployment-id ID", Short: "Show a deployment with its system metrics", Args: cobra.NoArgs,
		Example: "  usher hub deployment show --deployment-id base",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return cl.Configuration(ctx, id)
			})
		},
	}
	list := &cobra.Command{
		Use: "list [--top N]", Short: "List deployments", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return cl.Configurations(ctx, top)
			})
		},
	}
	list.Flags().IntVar(&top, "top", 100, "at most this many")
	del := &cobra.Command{
		Use: "delete --deployment-id ID [--etag E]", Short: "Delete a deployment (devices keep their modules until another applies)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return nil, cl.DeleteConfiguration(ctx, id, etag)
			})
		},
	}
	etagFlag(del.Flags(), &etag)
	for _, sub := range []*cobra.Command{create, show, del} {
		idFlag(sub, &id, "deployment-id", "deployment (configuration) ID")
	}
	cmd.AddCommand(create, show, list, del)
	return cmd
}

// deploymentBody builds a Configuration from the CLI's flags. --content may
// be the content object itself or a whole deployment manifest with a
// "content" member (what az accepts). A layered deployment is one whose
// modulesContent addresses sub-paths ("properties.desired.modules.x").
func deploymentBody(id, content, target, labels, metrics string, priority int) (map[string]any, error) {
	c, err := jsonObject("content", content)
	if err != nil {
		return nil, err
	}
	if inner, ok := c["content"].(map[string]any); ok {
		c = inner
	}
	if _, ok := c["modulesContent"]; !ok {
		if _, ok := c["deviceContent"]; !ok {
			if _, ok := c["moduleContent"]; !ok {
				return nil, fmt.Errorf("--content needs modulesContent, moduleContent or deviceContent")
			}
		}
	}
	body := map[string]any{"id": id, "schemaVersion": "1.0", "content": c, "targetCondition": target, "priority": priority}
	if labels != "" {
		l, err := jsonObject("labels", labels)
		if err != nil {
			return nil, err
		}
		body["labels"] = l
	}
	if metrics != "" {
		m, err := jsonObject("metrics", metrics)
		if err != nil {
			return nil, err
		}
		if _, ok := m["queries"]; !ok {
			m = map[string]any{"queries": m}
		}
		body["metrics"] = m
	}
	return body, nil
}

func (c *hubCLI) queryCommand() *cobra.Command {
	var top, pageSize int
	cmd := &cobra.Command{
		Use:   "query \"SELECT … FROM devices [WHERE …]\"",
		Short: "Query device or module twins with the IoT Hub query language (az iot hub query)",
		Example: `  usher hub query "SELECT * FROM devices WHERE tags.environment = 'test'"
  usher hub query "SELECT COUNT() AS n FROM devices WHERE capabilities.iotEdge = true"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				items, err := allPages(ctx, top, func(ctx context.Context, size int, cont string) ([]json.RawMessage, string, error) {
					if size == 0 || size > pageSize {
						size = pageSize
					}
					return cl.HubQuery(ctx, args[0], size, cont)
				})
				if err != nil {
					return nil, err
				}
				return json.Marshal(items)
			})
		},
	}
	cmd.Flags().IntVar(&top, "top", -1, "at most this many results (-1: all)")
	cmd.Flags().IntVar(&pageSize, "page-size", 100, "results per request")
	return cmd
}

func (c *hubCLI) methodCommand() *cobra.Command {
	var id, moduleID, name, payload string
	var timeout int
	cmd := &cobra.Command{
		Use:     "invoke-method --device-id ID [--module-id M] --method-name NAME [--method-payload JSON] [--timeout S]",
		Short:   "Invoke a direct method on a connected device or module (az iot hub invoke-device-method)",
		Example: `  usher hub invoke-method --device-id sensor-1 --method-name reboot --method-payload '{"delay":5}'`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p any = map[string]any{}
			if payload != "" {
				if err := json.Unmarshal([]byte(payload), &p); err != nil {
					return fmt.Errorf("--method-payload is not valid JSON: %v", err)
				}
			}
			body := map[string]any{"methodName": name, "payload": p, "responseTimeoutInSeconds": timeout}
			return c.with(cmd, func(ctx context.Context, cl *client.Client) (json.RawMessage, error) {
				return cl.InvokeMethod(ctx, id, moduleID, body)
			})
		},
	}
	idFlag(cmd, &id, "device-id", "device ID")
	cmd.Flags().StringVar(&moduleID, "module-id", "", "module ID, to call a module")
	cmd.Flags().StringVar(&name, "method-name", "", "the method")
	_ = cmd.MarkFlagRequired("method-name")
	cmd.Flags().StringVar(&payload, "method-payload", "", "JSON payload")
	cmd.Flags().IntVar(&timeout, "timeout", 30, "seconds to wait for the device's answer (5–300)")
	return cmd
}

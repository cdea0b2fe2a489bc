package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/hub"
)

// messageView is one device-to-cloud message as `usher hub messages` prints
// it: one JSON object per line.
type messageView struct {
	Seq          int64                `json:"seq"`
	DeviceID     string               `json:"deviceId"`
	ModuleID     string               `json:"moduleId,omitempty"`
	EnqueuedTime string               `json:"enqueuedTime"`
	System       hub.SystemProperties `json:"systemProperties"`
	Properties   map[string]string    `json:"properties,omitempty"`
	Body         any                  `json:"body"`
	BodyEncoding string               `json:"bodyEncoding"`
}

func viewMessage(m hub.Message) messageView {
	v := messageView{Seq: m.Seq, DeviceID: m.DeviceID, ModuleID: m.ModuleID, EnqueuedTime: m.Enqueued.UTC().Format(time.RFC3339Nano),
		System: m.System, Properties: m.Properties, Body: string(m.Body), BodyEncoding: "utf-8"}
	var js json.RawMessage
	switch {
	case json.Unmarshal(m.Body, &js) == nil:
		v.Body, v.BodyEncoding = js, "json"
	case !utf8.Valid(m.Body):
		v.Body, v.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	return v
}

func (c *hubCLI) messagesCommand() *cobra.Command {
	var limit int
	var follow bool
	var deviceID string
	cmd := &cobra.Command{
		Use:   "messages [--follow] [--limit N] [--device-id D]",
		Short: "Print the device-to-cloud messages the built-in hub received (one JSON object per line)",
		Long: `Print the built-in hub's message log: the newest device-to-cloud messages
(telemetry), kept in the data directory (the newest 10,000). With --follow,
wait for new messages until interrupted. Reads the data directory directly,
whether or not the server runs.`,
		Example: "  usher hub messages --limit 20\n  usher hub messages --follow --device-id sensor-1",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openLocated(cmd.Context(), c.conn.where.locate(c.conn.dataDir, c.e))
			if err != nil {
				return err
			}
			defer db.Close()
			h := hub.NewService(db, hub.Options{})
			return tailMessages(cmd.Context(), h, limit, follow, func(m hub.Message) error {
				if deviceID != "" && m.DeviceID != deviceID {
					return nil
				}
				b, err := json.Marshal(viewMessage(m))
				if err != nil {
					return err
				}
				_, err = c.e.stdout.Write(append(b, '\n'))
				return err
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "print at most this many of the newest messages first")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new messages until interrupted")
	cmd.Flags().StringVar(&deviceID, "device-id", "", "only this device's messages")
	return cmd
}

// followInterval is how often --follow looks for new messages.
const followInterval = 500 * time.Millisecond

// tailMessages prints the newest limit messages, then, with follow, the new
// ones as they arrive until ctx ends.
func tailMessages(ctx context.Context, h *hub.Service, limit int, follow bool, print func(hub.Message) error) error {
	var all []hub.Message
	var after int64
	for {
		page, err := h.Messages(ctx, after, hub.MaxMessagesPage)
		if err != nil {
			return err
		}
		all = append(all, page...)
		if len(all) > limit {
			all = all[len(all)-limit:]
		}
		if len(page) > 0 {
			after = page[len(page)-1].Seq
		}
		if len(page) < hub.MaxMessagesPage {
			break
		}
	}
	for _, m := range all {
		if err := print(m); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		page, err := h.Messages(ctx, after, hub.MaxMessagesPage)
		if err != nil {
			return err
		}
		for _, m := range page {
			if err := print(m); err != nil {
				return err
			}
			after = m.Seq
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// instanceView is an instance as the API answers it; fields the caller's
// role does not see are absent.
type instanceView struct {
	Name         string          `json:"name"`
	File         string          `json:"file"`
	Datastore    string          `json:"datastore"`
	Phase        string          `json:"phase"`
	Message      string          `json:"message"`
	SSL          bool            `json:"ssl"`
	Verified     bool            `json:"ssl_verified"`
	Serial       string          `json:"certificate_serial"`
	Expires      string          `json:"certificate_expires"`
	Generation   uint64          `json:"generation"`
	LastSeen     string          `json:"agent_last_seen"`
	Denied       []string        `json:"denied"`
	EncryptedRPC json.RawMessage `json:"encrypted_rpc_messaging"`
}

func newInstanceCommand() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Show instances as the running reconciler sees them",
	}
	api.register(cmd.PersistentFlags())
	list := &cobra.Command{
		Use:   "list",
		Short: "List every instance with its phase and whether its agent verified SSL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			var r struct{ Instances []instanceView }
			if err := c.call(cmd.Context(), "GET", "/v1/instances", &r); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tDATASTORE\tPHASE\tSSL\tVERIFIED\tMESSAGE")
			for _, v := range r.Instances {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Datastore, v.Phase, onOff(v.SSL), yesNo(v.Verified), v.Message)
			}
			return w.Flush()
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one instance as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			var r struct{ Instance json.RawMessage }
			if err := c.call(cmd.Context(), "GET", "/v1/instances/"+args[0], &r); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), r.Instance)
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

// newSSLShowCommand is Trove's mgmt-ssl-show.
func newSSLShowCommand() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: `Show an instance's SSL state as the reconciler sees it: {"ssl": {"enabled": ..., "verified": ...}} (admin token)`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			var r json.RawMessage
			if err := c.call(cmd.Context(), "GET", "/mgmt/instances/"+args[0]+"/ssl", &r); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), r)
		},
	}
	api.register(cmd.Flags())
	return cmd
}

func newKeysCommand() *cobra.Command {
	var (
		api apiFlags
		all bool
	)
	cmd := &cobra.Command{Use: "keys", Short: "Manage per-instance RPC keys"}
	rotate := &cobra.Command{
		Use:   "rotate NAME|--all",
		Short: "Rotate instances' RPC keys (admin token)",
		Long: `Rotate the RPC key of NAME, or of every instance with RPC encryption
(--all). The new key is stored wrapped, delivered to the agent under the
current key, and replaces it when the agent first uses it; until then the
old key keeps working.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return fmt.Errorf("keys rotate: name one instance or pass --all")
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			names := args
			if all {
				var r struct{ Instances []instanceView }
				if err := c.call(cmd.Context(), "GET", "/v1/instances", &r); err != nil {
					return err
				}
				names = nil
				for _, v := range r.Instances {
					var rpc struct{ Enabled bool }
					if json.Unmarshal(v.EncryptedRPC, &rpc) == nil && rpc.Enabled {
						names = append(names, v.Name)
					}
				}
			}
			var failed int
			for _, n := range names {
				var r struct {
					RPC struct {
						Next uint32 `json:"next_key_version"`
					}
				}
				if err := c.call(cmd.Context(), "POST", "/mgmt/instances/"+n+"/keys/rotate", &r); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", n, err)
					failed++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: key version %d delivered; it replaces the current one when the agent uses it\n", n, r.RPC.Next)
			}
			if failed > 0 {
				return fmt.Errorf("keys rotate: %d of %d failed", failed, len(names))
			}
			return nil
		},
	}
	rotate.Flags().BoolVar(&all, "all", false, "every instance with RPC encryption")
	api.register(rotate.Flags())
	cmd.AddCommand(rotate, newKeysRewrapCommand())
	return cmd
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
)

func (a *app) partitionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partitions",
		Short: "Change the store's number of partitions",
		Long: `The store's operations fall in P partitions by their DOID (FNV-1a of the DOID,
mod P), chosen at the first migrate (16 unless the store URL says
partitions=N). Relays share the partitions; more partitions let more relays
and workers publish at once. "trustlog cursor status" lists them.`,
		Example: "  trustlog --store postgres://app@db/app partitions set 64",
	}
	set := &cobra.Command{
		Use:   "set N",
		Short: "Give the store N partitions (every relay stopped, nothing left to publish)",
		Long: `Give the store N partitions (1 to 1024). Per-object order lives in the
partitions, so the change is a hand-over while no relay runs:

 1. Run the relays until "trustlog cursor status" shows no backlog (every
    operation with a position published or in the retry table), then stop
    every relay. The application may go on recording.
 2. trustlog partitions set N. It refuses (exit 2, changing nothing) while a
    relay is live, a partition lease has not run out, or a partition has a
    backlog. It then makes partitions 0..N-1, each cursor at the log's last
    position (nothing published is sent again), and moves every operation
    and every row of the retry table to its DOID's partition under N, in
    batches, showing its progress. Interrupted, run it again with the same N:
    it finishes the move.
 3. Start the relays again.

Processes that recorded operations before the change keep the old number
until they restart: the relay's sequencer moves what they record to its
DOID's partition before it gives it a position, so restart them when
convenient.`,
		Example: "  trustlog --store postgres://app@db/app partitions set 64",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 || n > core.MaxPartitions {
				return usagef("partitions set %s: want a number of partitions from 1 to %d", args[0], core.MaxPartitions)
			}
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			r, ok := s.(core.Repartitioner)
			if !ok {
				return usagef("this store (%T) cannot change its number of partitions", s)
			}
			before, err := s.Partitions(cmd.Context())
			if err != nil {
				return err
			}
			pr := a.newProgress()
			var moved int64
			err = r.Repartition(cmd.Context(), n, func(done int64) {
				moved = done
				pr.set("operations", int(done))
			})
			pr.done(map[string]int{"operations": int(moved)})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "the store has %d partitions (it had %d); %d operations looked at\n", n, len(before), moved)
			return nil
		},
	}
	cmd.AddCommand(set)
	return cmd
}

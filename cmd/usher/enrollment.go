package main

import "github.com/spf13/cobra"

func enrollmentCommand(e *env) *cobra.Command {
	return &cobra.Command{Use: "enrollment", Short: "Manage individual enrollments"}
}

func groupCommand(e *env) *cobra.Command {
	return &cobra.Command{Use: "enrollment-group", Short: "Manage enrollment groups"}
}

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/usher-iot/usher/internal/wire"
)

// outputFormat is the value of --output (-o): json, as az prints by
// default, or table, aligned columns of the key fields.
type outputFormat string

const (
	outputJSON  outputFormat = "json"
	outputTable outputFormat = "table"
)

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }

func (o *outputFormat) Set(v string) error {
	switch f := outputFormat(strings.ToLower(v)); f {
	case outputJSON, outputTable:
		*o = f
		return nil
	}
	return fmt.Errorf("must be json or table")
}

// table is rows of cells under a header.
type table struct {
	header []string
	rows   [][]string
}

// print writes v as JSON, or the table tbl builds, per --output.
func (c *dpsCLI) print(v any, tbl func() table) error {
	if c.out == outputTable {
		return writeTable(c.e.stdout, tbl())
	}
	return printJSON(c.e, v)
}

// writeTable writes a header, a rule of dashes under each column name, and
// the rows, aligned, as az's table output does.
func writeTable(w io.Writer, t table) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	line(t.header)
	rule := make([]string, len(t.header))
	for i, h := range t.header {
		rule[i] = strings.Repeat("-", len(h))
	}
	line(rule)
	for _, r := range t.rows {
		line(r)
	}
	return tw.Flush()
}

// resultTable shows a single value, as az shows a command's scalar result.
func resultTable(v string) table {
	return table{header: []string{"Result"}, rows: [][]string{{v}}}
}

func enrollmentTable(items ...wire.IndividualEnrollment) table {
	t := table{header: []string{"RegistrationId", "DeviceId", "AttestationType", "ProvisioningStatus", "IotEdge", "AllocationPolicy", "LastUpdated", "Etag"}}
	for _, e := range items {
		t.rows = append(t.rows, append([]string{e.RegistrationID, e.DeviceID}, settingsCells(e.EnrollmentSettings)...))
	}
	return t
}

func groupTable(items ...wire.EnrollmentGroup) table {
	t := table{header: []string{"EnrollmentGroupId", "AttestationType", "ProvisioningStatus", "IotEdge", "AllocationPolicy", "LastUpdated", "Etag"}}
	for _, g := range items {
		t.rows = append(t.rows, append([]string{g.EnrollmentGroupID}, settingsCells(g.EnrollmentSettings)...))
	}
	return t
}

// settingsCells are the columns enrollments and groups share.
func settingsCells(s wire.EnrollmentSettings) []string {
	att := ""
	if s.Attestation != nil {
		att = s.Attestation.Type
	}
	edge := false
	if s.Capabilities != nil {
		edge = s.Capabilities.IoTEdge
	}
	return []string{att, s.ProvisioningStatus, strconv.FormatBool(edge), s.AllocationPolicy, s.LastUpdatedDateTimeUTC, s.ETag}
}

func registrationTable(items ...wire.DeviceRegistrationState) table {
	t := table{header: []string{"RegistrationId", "DeviceId", "Status", "Substatus", "AssignedHub", "LastUpdated", "Etag"}}
	for _, r := range items {
		t.rows = append(t.rows, []string{r.RegistrationID, r.DeviceID, r.Status, r.Substatus, r.AssignedHub, r.LastUpdatedDateTimeUTC, r.ETag})
	}
	return t
}

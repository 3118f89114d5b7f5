package python

import "testing"

func TestParseMemory(t *testing.T) {
	m, err := parseMemory("python_blocks=51234 gc_counts=(412, 3, 7)")
	if err != nil || m.Blocks != 51234 || m.GCCounts != [3]int64{412, 3, 7} {
		t.Errorf("parseMemory = %+v, %v", m, err)
	}
	if _, err := parseMemory("something else"); err == nil {
		t.Error("parseMemory accepted a report it cannot read")
	}
}

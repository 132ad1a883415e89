package sweep

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseSlurmOutputs(t *testing.T) {
	require.Equal(t, map[int]string{0: "RUNNING", 3: "PENDING", 4: "PENDING", 5: "PENDING", 7: "PENDING", 9: "PENDING"},
		parseQueue([]byte("0|RUNNING\n3-5%2|PENDING\n7,9|PENDING\n\n")))
	require.Empty(t, parseQueue([]byte("")))

	sc := "JobId=12 ArrayJobId=10 ArrayTaskId=2 JobName=seqbench-x UserId=root(0) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) ExitCode=0:15\n" +
		"JobId=10 ArrayJobId=10 ArrayTaskId=0 JobName=a JobState=COMPLETED Reason=None ExitCode=0:0\n"
	require.Equal(t, map[int]taskEnd{2: {"TIMEOUT", "0:15", "TimeLimit"}, 0: {"COMPLETED", "0:0", "None"}}, parseScontrol([]byte(sc)))

	sa := "10_0|COMPLETED|0:0\n10_1|CANCELLED by 0|0:15\n10_2|OUT_OF_MEMORY|0:125\n10_[3-4]|PENDING|0:0\n"
	require.Equal(t, map[int]taskEnd{0: {State: "COMPLETED", ExitCode: "0:0"}, 1: {State: "CANCELLED", ExitCode: "0:15"},
		2: {State: "OUT_OF_MEMORY", ExitCode: "0:125"}}, parseSacct([]byte(sa)))
}

func TestProgressETA(t *testing.T) {
	p := newProgress(nil, false, 10, 0, 2)
	_, ok := p.eta(8)
	require.False(t, ok, "no estimate before a run finished")
	p.took = []float64{10, 30} // mean 20
	p.done = 2
	now := time.Now()
	p.running = map[string]time.Time{"a": now.Add(-5 * time.Second), "b": now.Add(-40 * time.Second)}
	// a needs 15 s more, b (past the mean) 20 s; 6 pending runs of 20 s
	// go to the earlier slot each time: a: 15+20+20+20 = 75, b: 20+20+20+20 = 80.
	eta, ok := p.eta(6)
	require.True(t, ok)
	require.InDelta(t, 80, eta, 0.5)
	// Every run started, more slots than runs: the longest remaining.
	p.slots = 12
	eta, _ = p.eta(0)
	require.InDelta(t, 20, eta, 0.5)
}

package template

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkSteps runs the checks that need every step: duplicate names,
// dependencies that name no step or the step itself, and cycles (which the
// original's stub never detected).
func (d *decoder) checkSteps(infos []stepInfo) {
	byName := map[string]int{}
	for i, in := range infos {
		if in.name == "" {
			continue
		}
		if first, dup := byName[in.name]; dup {
			d.errorf(in.nameNode, join(in.path, "name"), "duplicate step name %q; first defined at line %d", in.name, infos[first].nameNode.Line)
			continue
		}
		byName[in.name] = i
	}
	edges := make([][]edge, len(infos))
	for i, in := range infos {
		seen := map[string]int{}
		for j, n := range in.depNodes {
			dep := deref(n).Value
			dp := index(in.depsPath, in.depIdx[j])
			if line, dup := seen[dep]; dup {
				d.errorf(n, dp, "duplicate dependency %q; first listed at line %d", dep, line)
				continue
			}
			seen[dep] = n.Line
			if dep == in.name {
				d.errorf(n, dp, "step %q depends on itself", dep)
				continue
			}
			target, ok := byName[dep]
			if !ok {
				d.errorf(n, dp, "unknown dependency %q%s", dep, stepChoices(dep, infos))
				continue
			}
			edges[i] = append(edges[i], edge{to: target, node: n, path: dp})
		}
	}
	for _, cyc := range findCycles(edges) {
		names := make([]string, 0, len(cyc)+1)
		for _, e := range cyc {
			names = append(names, infos[e.from].name)
		}
		names = append(names, infos[cyc[0].from].name)
		first := cyc[0]
		d.errorf(first.node, first.path, "dependency cycle: %s (each step depends on the next)", strings.Join(names, " -> "))
	}
}

// edge is a dependency: step from depends on step to, written at node.
type edge struct {
	from, to int
	node     *yaml.Node
	path     string
}

// findCycles returns one cycle per strongly connected component with more
// than one step, starting at the component's first step in file order and
// following dependencies in written order (shortest path back), so the
// report is deterministic.
func findCycles(adj [][]edge) [][]edge {
	for i := range adj {
		for j := range adj[i] {
			adj[i][j].from = i
		}
	}
	comp := scc(adj)
	var out [][]edge
	done := map[int]bool{}
	for start := range adj {
		c := comp[start]
		if done[c] {
			continue
		}
		done[c] = true
		// BFS from start through the component back to start.
		prev := map[int]edge{}
		queue := []int{start}
		found := false
		for len(queue) > 0 && !found {
			v := queue[0]
			queue = queue[1:]
			for _, e := range adj[v] {
				if comp[e.to] != c {
					continue
				}
				if e.to == start {
					prev[start] = e
					found = true
					break
				}
				if _, seen := prev[e.to]; !seen {
					prev[e.to] = e
					queue = append(queue, e.to)
				}
			}
		}
		if !found {
			continue // single step without a self loop: no cycle
		}
		var cyc []edge
		for v := start; ; {
			e := prev[v]
			cyc = append([]edge{e}, cyc...)
			v = e.from
			if v == start {
				break
			}
		}
		out = append(out, cyc)
	}
	return out
}

// scc labels each vertex with its strongly connected component (Tarjan).
func scc(adj [][]edge) []int {
	n := len(adj)
	idx, low, comp := make([]int, n), make([]int, n), make([]int, n)
	for i := range idx {
		idx[i], comp[i] = -1, -1
	}
	onStack := make([]bool, n)
	var stack []int
	counter, label := 0, 0
	var visit func(v int)
	visit = func(v int) {
		idx[v], low[v] = counter, counter
		counter++
		stack = append(stack, v)
		onStack[v] = true
		for _, e := range adj[v] {
			switch {
			case idx[e.to] < 0:
				visit(e.to)
				low[v] = min(low[v], low[e.to])
			case onStack[e.to]:
				low[v] = min(low[v], idx[e.to])
			}
		}
		if low[v] == idx[v] {
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp[w] = label
				if w == v {
					break
				}
			}
			label++
		}
	}
	for v := range adj {
		if idx[v] < 0 {
			visit(v)
		}
	}
	return comp
}

// stepChoices suggests a close step name, or lists the template's steps.
func stepChoices(name string, infos []stepInfo) string {
	var names []string
	for _, in := range infos {
		if in.name != "" && !slices.Contains(names, in.name) {
			names = append(names, in.name)
		}
	}
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	if len(names) == 0 {
		return ""
	}
	if len(names) > 10 {
		names = append(names[:10], "…")
	}
	return "; steps in this template: " + strings.Join(names, ", ")
}

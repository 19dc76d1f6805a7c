package kernel

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// kernelReservedBytes: memory the kernel keeps before MemTotal is counted: 1/64 of the
// installed memory (the struct page array) plus 64 MiB (kernel image, firmware, early
// allocations).
func kernelReservedBytes(installed uint64) uint64 {
	return installed/64 + 64*mib
}

const (
	// systemUsedBytes: memory Talos itself uses (machined, containerd, system services).
	systemUsedBytes = 1 * gib
	// pageCacheBytes: the page cache, reported as Cached.
	pageCacheBytes = 512 * mib
	// hugePageHeadroomBytes: boot-time huge page pools stop before leaving the kernel less.
	hugePageHeadroomBytes = 2 * gib

	// PageSize2M and PageSize1G are the huge page sizes of amd64, in kB.
	PageSize2M = 2048
	PageSize1G = 1024 * 1024
)

// Pool is one huge page size: pages per NUMA node.
type Pool struct {
	SizeKB  uint64
	PerNode []uint64
}

// Total is the pool's page count.
func (p Pool) Total() (sum uint64) {
	for _, c := range p.PerNode {
		sum += c
	}

	return sum
}

// Memory is the derived memory layout of a machine.
type Memory struct {
	TotalKB       uint64
	NUMA          int
	DefaultSizeKB uint64
	Pools         []Pool // in the kernel's hstate order
}

var hugeSizeRE = regexp.MustCompile(`^([0-9]+)([KkMmGg])?$`)

// parseHugeSize returns the size in kB of "2M", "1G", "2048K"; only 2M and 1G exist on amd64.
func parseHugeSize(s string) (uint64, bool) {
	m := hugeSizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}

	v, _ := strconv.ParseUint(m[1], 10, 64)

	switch strings.ToUpper(m[2]) {
	case "": // bytes
		v /= 1024
	case "G":
		v *= 1024 * 1024
	case "M":
		v *= 1024
	}

	return v, v == PageSize2M || v == PageSize1G
}

// hugeRequest is a page count asked for one pool: spread over the NUMA nodes (spread, count),
// or per node.
type hugeRequest struct {
	set     bool
	spread  bool
	count   uint64
	perNode []uint64
}

type hstate struct {
	sizeKB uint64
	req    *hugeRequest
}

// hugeParser follows the kernel's boot-time parsing of hugepagesz=, hugepages= and
// default_hugepagesz= (mm/hugetlb.c: hugepagesz_setup, hugepages_setup,
// default_hugepagesz_setup, hugetlb_init), argument by argument in command-line order:
//
//   - hugepagesz=S adds the pool of size S and makes it the one the next hugepages= sizes; a
//     size given twice is ignored (unless it is the default size whose count is not set yet),
//     and so is an unsupported size (then the next hugepages= is ignored too).
//   - hugepages=N (or node:N,node:N) sizes the pool selected last; before any pool exists it
//     is kept for the default pool. A second hugepages= with no hugepagesz= in between is
//     ignored, as is one after an invalid size.
//   - default_hugepagesz=S picks the pool HugePages_* reports (once; later ones are ignored
//     and also void the next hugepages=), adding it if needed and giving it a count kept from
//     an earlier hugepages=.
//   - at the end the 2M pool always exists; without default_hugepagesz= it is the default,
//     and a kept count replaces its own.
type hugeParser struct {
	numa          int
	hstates       []*hstate
	selected      *hstate
	valid         bool
	defaultParsed bool
	defaultH      *hstate
	pending       *hugeRequest
	last          *hugeRequest
	gigantic      []*hstate // gigantic pools, in the order their count was set (allocated at once)
}

func (p *hugeParser) find(size uint64) *hstate {
	for _, h := range p.hstates {
		if h.sizeKB == size {
			return h
		}
	}

	return nil
}

func (p *hugeParser) add(size uint64) *hstate {
	if h := p.find(size); h != nil {
		return h
	}

	h := &hstate{sizeKB: size, req: &hugeRequest{}}
	p.hstates = append(p.hstates, h)
	p.selected = h

	return h
}

func (p *hugeParser) counted(h *hstate) {
	if h.sizeKB == PageSize1G {
		p.gigantic = append(p.gigantic, h)
	}
}

func (p *hugeParser) arg(key, value string) {
	switch key {
	case "hugepagesz":
		p.valid = false

		size, ok := parseHugeSize(value)
		if !ok {
			return
		}

		if h := p.find(size); h != nil {
			if !p.defaultParsed || h != p.defaultH || h.req.set {
				return // specified twice
			}

			p.selected, p.valid = h, true

			return
		}

		p.add(size)
		p.valid = true
	case "default_hugepagesz":
		p.valid = false

		if p.defaultParsed {
			return
		}

		size, ok := parseHugeSize(value)
		if !ok {
			return
		}

		p.defaultH = p.add(size)
		p.valid, p.defaultParsed = true, true

		if p.pending.set {
			*p.defaultH.req = *p.pending
			*p.pending = hugeRequest{}
			p.counted(p.defaultH)
		}
	case "hugepages":
		if !p.valid {
			p.valid = true

			return
		}

		target := p.pending
		if len(p.hstates) > 0 {
			target = p.selected.req
		}

		if target == p.last {
			return // specified twice without an interleaving hugepagesz=
		}

		perNode, ok := splitHugePages(value, p.numa)
		if !ok {
			return
		}

		target.set, target.perNode = true, perNode
		target.spread = !strings.Contains(value, ":")
		target.count = 0

		for _, c := range perNode {
			target.count += c
		}
		p.last = target

		if len(p.hstates) > 0 {
			p.counted(p.selected)
		}
	}
}

// finish is hugetlb_init: the 2M pool always exists and is the default unless
// default_hugepagesz= chose another.
func (p *hugeParser) finish() {
	two := p.add(PageSize2M)

	if !p.defaultParsed {
		p.defaultH = two

		if p.pending.set {
			*two.req = *p.pending
		}
	}
}

// MemoryOf derives the memory layout from the hardware and the kernel command line:
//
//	MemTotal = installed - (installed/64 + 64 MiB)
//
// Huge page pools as hugeParser reads the command line; N pages, unless given per node, are
// spread over the NUMA nodes as the kernel's boot allocation does: 1G pages round-robin from
// node 0 (lower nodes take the remainder), 2M pages in the allocation threads' chunks
// (BootChunkSplit). Gigantic (1G) pools are allocated first, while the command line is parsed,
// in that order; then the 2M pool.
// Allocation stops at MemTotal - 2 GiB: a pool that does not fit gets the pages that do.
func MemoryOf(hw Hardware, cmdline []string) Memory {
	installed := hw.MemoryBytes
	numa := max(hw.NUMANodes, 1)
	view := Memory{
		TotalKB: (installed - min(installed, kernelReservedBytes(installed))) / kib,
		NUMA:    numa,
	}

	parser := &hugeParser{numa: numa, valid: true, pending: &hugeRequest{}}

	for _, arg := range cmdline {
		key, value, _ := strings.Cut(arg, "=")
		parser.arg(key, value)
	}

	parser.finish()

	view.DefaultSizeKB = parser.defaultH.sizeKB

	order := parser.gigantic
	for _, h := range parser.hstates {
		if h.sizeKB != PageSize1G {
			order = append(order, h)
		}
	}

	budgetKB := uint64(0)
	if view.TotalKB*kib > hugePageHeadroomBytes {
		budgetKB = view.TotalKB - hugePageHeadroomBytes/kib
	}

	allocated := map[*hstate][]uint64{}

	for _, h := range order {
		if _, done := allocated[h]; done || !h.req.set {
			continue
		}

		perNode := make([]uint64, numa)

		wanted := h.req.perNode
		if h.req.spread && h.sizeKB == PageSize2M {
			wanted = BootChunkSplit(h.req.count, numa, hw.CPUs)
		}

		for node, want := range wanted {
			fit := min(want, budgetKB/h.sizeKB)
			perNode[node] = fit
			budgetKB -= fit * h.sizeKB
		}

		allocated[h] = perNode
	}

	for _, h := range parser.hstates {
		pool := Pool{SizeKB: h.sizeKB, PerNode: make([]uint64, numa)}
		if perNode, ok := allocated[h]; ok {
			pool.PerNode = perNode
		}

		view.Pools = append(view.Pools, pool)
	}

	return view
}

// roundRobin is one allocation run over the nodes with memory from the first: node i gets
// count/numa, the first count%numa nodes one more (mm/hugetlb.c alloc_pool_huge_folio,
// for_each_node_mask_to_alloc).
func roundRobin(count uint64, numa int) []uint64 {
	perNode := make([]uint64, numa)

	for i := range perNode {
		perNode[i] = count / uint64(numa)
		if uint64(i) < count%uint64(numa) {
			perNode[i]++
		}
	}

	return perNode
}

// BootChunkSplit is how Linux 6.18 (Talos v1.13.9 ships 6.18.44) spreads hugepages=N of 2 MiB
// pages over the NUMA nodes at boot: hugetlb_pages_alloc_boot (mm/hugetlb.c) hands the N pages to
// padata_do_multithreaded (kernel/padata.c) with max_threads = hugepage_alloc_threads, by default
// online CPUs / 4 (at least 1), and min_chunk = N / threads; padata runs
// works = min(max(N / max(min_chunk, 1), 1), threads) works: one work takes all N, else chunks of
// max(N / (works*4), min_chunk, 1) pages in order, the last the rest. Each chunk
// (hugetlb_pages_alloc_boot_node) starts its round-robin at first_online_node again, so node 0
// takes one page more per odd chunk: 50000 pages on 64 CPUs and 2 nodes are 16 chunks of 3125,
// 25008 + 24992. Gigantic (1G) pages are one round-robin run (roundRobin). The collection's
// verify computes the same split (plugins/module_utils/resources.py boot_hugepages_per_node).
func BootChunkSplit(count uint64, numa, cpus int) []uint64 {
	numa = max(numa, 1)
	if count == 0 {
		return make([]uint64, numa)
	}

	threads := uint64(max(cpus/4, 1))
	minChunk := count / threads
	works := min(max(count/max(minChunk, 1), 1), threads)

	if works == 1 {
		return roundRobin(count, numa)
	}

	chunk := max(count/(works*4), minChunk, 1)
	perNode := make([]uint64, numa)

	for start := uint64(0); start < count; start += chunk {
		for node, pages := range roundRobin(min(chunk, count-start), numa) {
			perNode[node] += pages
		}
	}

	return perNode
}

// splitHugePages reads hugepages=N or hugepages=node:N,node:N into pages per NUMA node.
func splitHugePages(value string, numa int) ([]uint64, bool) {
	perNode := make([]uint64, numa)

	if !strings.Contains(value, ":") {
		total, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return nil, false
		}

		return roundRobin(total, numa), true
	}

	for part := range strings.SplitSeq(value, ",") {
		nodeStr, countStr, ok := strings.Cut(part, ":")
		node, err1 := strconv.Atoi(nodeStr)
		count, err2 := strconv.ParseUint(countStr, 10, 64)

		if !ok || err1 != nil || err2 != nil || node < 0 || node >= numa {
			return nil, false
		}

		perNode[node] = count
	}

	return perNode, true
}

// Pool returns the pool of a size (empty if the command line made none).
func (v Memory) Pool(sizeKB uint64) Pool {
	for _, p := range v.Pools {
		if p.SizeKB == sizeKB {
			return p
		}
	}

	return Pool{SizeKB: sizeKB, PerNode: make([]uint64, v.NUMA)}
}

// NodeTotalKB is one NUMA node's MemTotal (the machine's, split evenly; node 0 takes the remainder).
func (v Memory) NodeTotalKB(node int) uint64 { return split(v.TotalKB, v.NUMA, node) }

// HugetlbKB is the memory of every pool.
func (v Memory) HugetlbKB() (sum uint64) {
	for _, p := range v.Pools {
		sum += p.Total() * p.SizeKB
	}

	return sum
}

// split divides an amount evenly across NUMA nodes, node 0 taking the remainder.
func split(amount uint64, numa, node int) uint64 {
	share := amount / uint64(numa)
	if node == 0 {
		share += amount % uint64(numa)
	}

	return share
}

func (v Memory) freeKB() uint64 {
	used := v.HugetlbKB() + systemUsedBytes/kib + pageCacheBytes/kib

	return v.TotalKB - min(v.TotalKB, used)
}

// ProcMeminfo is /proc/meminfo.
func (v Memory) ProcMeminfo() string {
	var b strings.Builder

	line := func(name string, value uint64, unit bool) {
		if unit {
			fmt.Fprintf(&b, "%-16s%8d kB\n", name+":", value)
		} else {
			fmt.Fprintf(&b, "%-16s%8d\n", name+":", value)
		}
	}

	free := v.freeKB()
	def := v.Pool(v.DefaultSizeKB)

	line("MemTotal", v.TotalKB, true)
	line("MemFree", free, true)
	line("MemAvailable", free+pageCacheBytes/kib, true)
	line("Buffers", 0, true)
	line("Cached", pageCacheBytes/kib, true)
	line("SwapCached", 0, true)
	line("SwapTotal", 0, true)
	line("SwapFree", 0, true)
	line("AnonHugePages", 0, true)
	line("HugePages_Total", def.Total(), false)
	line("HugePages_Free", def.Total(), false)
	line("HugePages_Rsvd", 0, false)
	line("HugePages_Surp", 0, false)
	line("Hugepagesize", v.DefaultSizeKB, true)
	line("Hugetlb", v.HugetlbKB(), true)

	return b.String()
}

// NodeMeminfo is /sys/devices/system/node/node<N>/meminfo.
func (v Memory) NodeMeminfo(node int) string {
	var b strings.Builder

	line := func(name string, value uint64, unit bool) {
		if unit {
			fmt.Fprintf(&b, "Node %d %-16s%8d kB\n", node, name+":", value)
		} else {
			fmt.Fprintf(&b, "Node %d %-16s%8d\n", node, name+":", value)
		}
	}

	def := v.Pool(v.DefaultSizeKB)

	var hugetlb uint64
	for _, p := range v.Pools {
		hugetlb += p.PerNode[node] * p.SizeKB
	}

	total := split(v.TotalKB, v.NUMA, node)
	used := split(systemUsedBytes/kib+pageCacheBytes/kib, v.NUMA, node) + hugetlb

	line("MemTotal", total, true)
	line("MemFree", total-min(total, used), true)
	line("MemUsed", min(total, used), true)
	line("FilePages", split(pageCacheBytes/kib, v.NUMA, node), true)
	line("AnonHugePages", 0, true)
	line("HugePages_Total", def.PerNode[node], false)
	line("HugePages_Free", def.PerNode[node], false)
	line("HugePages_Surp", 0, false)

	return b.String()
}

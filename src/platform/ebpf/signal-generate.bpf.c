// SPDX-License-Identifier: GPL-2.0
// Signal tracer for auraed's observe service (docs/observe.md).
//
// A tp_btf program on the kernel tracepoint signal:signal_generate. For every signal it sends
// one record to a ring buffer with what user space cannot learn reliably later (the target may
// be gone by then): the target's thread-group id at each pid-namespace level, and the ids of
// its cgroups (cgroup v2 and every v1 hierarchy). Built with clang-14 -target bpf; CO-RE
// relocations (from the minimal type declarations below) adapt field offsets to the running
// kernel through its BTF, so no vmlinux.h or bpftool is needed at build time.

typedef unsigned char __u8;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define MAX_LEVELS 4
#define MAX_SUBSYS 16

struct kernfs_node { __u64 id; } __attribute__((preserve_access_index));
struct cgroup { struct kernfs_node *kn; } __attribute__((preserve_access_index));
struct cgroup_subsys_state { struct cgroup *cgroup; } __attribute__((preserve_access_index));
struct css_set {
  struct cgroup_subsys_state *subsys[MAX_SUBSYS];
  struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));
struct upid { int nr; void *ns; } __attribute__((preserve_access_index));
struct pid { unsigned int level; struct upid numbers[1]; } __attribute__((preserve_access_index));
struct task_struct {
  int pid;
  int tgid;
  struct task_struct *group_leader;
  struct pid *thread_pid;
  struct css_set *cgroups;
} __attribute__((preserve_access_index));
struct kernel_siginfo;

struct signal_event {
  __u64 cgroup_v2;
  __u64 cgroup_v1[MAX_SUBSYS];
  __s32 sig;
  __s32 result;
  __s32 tid;
  __s32 level;
  __s32 tgid[MAX_LEVELS];
  __s32 sender_tgid;
  __u32 subsys_count;
};

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} lost SEC(".maps");

SEC("tp_btf/signal_generate")
int BPF_PROG(on_signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
  struct signal_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    __u32 k = 0;
    __u64 *n = bpf_map_lookup_elem(&lost, &k);
    if (n) __sync_fetch_and_add(n, 1);
    return 0;
  }
  e->sig = sig;
  e->result = result;
  e->tid = BPF_CORE_READ(task, pid);
  e->sender_tgid = bpf_get_current_pid_tgid() >> 32;

  struct pid *p = BPF_CORE_READ(task, group_leader, thread_pid);
  unsigned int level = BPF_CORE_READ(p, level);
  e->level = level;
  unsigned long upid_size = bpf_core_type_size(struct upid);
  unsigned long numbers_off = bpf_core_field_offset(struct pid, numbers);
  #pragma unroll
  for (int i = 0; i < MAX_LEVELS; i++) {
    int nr = 0;
    if (i <= level)
      bpf_probe_read_kernel(&nr, sizeof(nr), (void *)p + numbers_off + i * upid_size);
    e->tgid[i] = nr;
  }

  struct css_set *cs = BPF_CORE_READ(task, cgroups);
  e->cgroup_v2 = BPF_CORE_READ(cs, dfl_cgrp, kn, id);
  unsigned long subsys_off = bpf_core_field_offset(struct css_set, subsys);
  unsigned int count = bpf_core_field_size(struct css_set, subsys) / sizeof(void *);
  e->subsys_count = count;
  #pragma unroll
  for (int i = 0; i < MAX_SUBSYS; i++) {
    __u64 id = 0;
    if (i < count) {
      struct cgroup_subsys_state *css = 0;
      bpf_probe_read_kernel(&css, sizeof(css), (void *)cs + subsys_off + i * sizeof(void *));
      if (css) id = BPF_CORE_READ(css, cgroup, kn, id);
    }
    e->cgroup_v1[i] = id;
  }
  bpf_ringbuf_submit(e, 0);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";

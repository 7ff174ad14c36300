// Container processes without a container engine: launch one command in
// fresh UTS (hostname = pod name), PID, IPC and mount namespaces joined to the
// pod's network namespace, with its stdout/stderr appended to a log file.
//
// Each container gets a "shim" (conmon's role): a process detached from the
// agent (double fork + setsid) that is the container's parent, waits for it
// and writes its exit status to a file. Neither dies with the agent, so a
// restarted agent re-attaches by (pid, start time) and still learns exit
// codes of containers that ended while it was away.
//
// The container's root is a scratch directory: an image rootfs bind-mounted
// there, or (host filesystem) a tmpfs holding bind mounts of the host's
// top-level directories, so volume mount points such as /data can be made
// without touching the host's /. A fresh /proc is mounted for the new PID
// namespace.
//
// When the launch names cgroups, the container's first process writes "0" to
// their cgroup.procs (descriptors opened by the agent beforehand) as its very
// first step, before namespaces, mounts or exec: a failure ends it (exit 127)
// instead of letting it run outside its limits. The shim stays outside, so
// the OOM killer of a container's cgroup never takes the exit recorder.
//
// Everything between fork() and exec() uses only async-signal-safe calls: the
// agent is multi-threaded, so all strings are prepared before forking.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/result.h"

namespace sluice::agent {

struct VolumeMount {
  std::string source;  // host path
  std::string target;  // path inside the container
  bool readOnly = false;
};

struct ContainerLaunch {
  std::string hostname;
  std::string netnsPath;  // the pod's network namespace
  std::string rootfs;     // image directory; empty: the host filesystem
  std::string rootDir;    // an empty scratch directory for the container's root
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "KEY=VALUE"
  std::string workingDir;        // inside the container; empty: "/"
  std::vector<VolumeMount> mounts;
  std::string logPath;   // stdout and stderr, appended
  std::string exitPath;  // written by the shim when the container ends
  // cgroup.procs files the container joins before anything else runs in it
  // (so it never runs unconfined); at most kMaxCgroupFiles.
  std::vector<std::string> cgroupProcs;
};
constexpr size_t kMaxCgroupFiles = 4;

// A process named by pid and kernel start time (clock ticks since boot,
// /proc/<pid>/stat field 22), so a recycled pid is never mistaken for it.
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t startTime = 0;
};

Result<ProcessIdentity> launchContainer(const ContainerLaunch& launch);

// Start time of a live (not zombie) process; nullopt when gone.
std::optional<uint64_t> processStartTime(pid_t pid);
bool processAlive(const ProcessIdentity& p);

// What the shim wrote: exit code (128+signal for a signal, as a shell
// reports it), the signal (0 if none), and when (Unix ms).
struct ExitRecord {
  int exitCode = 0;
  int signal = 0;
  int64_t finishedAtMs = 0;
};
std::optional<ExitRecord> readExitRecord(const std::string& path);

// Whether argv0 resolves to an executable inside the container's root (the
// host's / or `rootfs`), searching PATH when it has no slash. Lets the
// runtime report a missing command as a start error rather than exit 127.
bool commandExists(const std::string& rootfs, const std::string& argv0);

struct ExecOutput {
  int exitCode = -1;  // -1: timed out (the command was killed)
  std::string output;
};
// Runs argv in a running container's namespaces and root (as `kubectl exec`
// and exec probes do), with a timeout.
Result<ExecOutput> execInContainer(pid_t containerPid, const std::vector<std::string>& argv,
                                   std::chrono::milliseconds timeout);

int64_t nowUnixMs();

}  // namespace sluice::agent

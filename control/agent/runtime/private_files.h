// Files only the agent's user may read: what the pod runtime keeps under
// DATA_DIR/pods (container logs, which hold whatever a container prints, and
// the pods' persisted state, which holds their env). Directories are 0700 and
// files 0600 whatever the umask, and a directory an earlier version created
// looser is tightened when it is next used.
//
// Container processes reach their own files through bind mounts and exec'd
// shims running as root, so nothing else needs these paths.
#pragma once

#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace sluice::agent {

// mkdir -p with mode 0700 for every directory it creates, and chmod 0700 of
// `path` itself if it already existed.
Result<void> makePrivateDirs(const std::string& path);

// Replaces `path` with `data` (a temporary file + rename, so a crash leaves
// the old or the new content), mode 0600.
Result<void> writePrivateFile(const std::string& path, std::string_view data);

}  // namespace sluice::agent

// libbpf's option structs carry their own size in `sz` so old and new libbpf
// versions agree on the layout. LIBBPF_OPTS fills it with a GNU statement
// expression and a compound literal, which clang rejects in pedantic C++, so
// C++ code makes the structs with this and sets fields by name.
#pragma once

namespace sluice::bpf {

template <typename Opts>
Opts libbpfOpts() {
  Opts opts{};
  opts.sz = sizeof(Opts);
  return opts;
}

}  // namespace sluice::bpf

#include "core/memory.h"

#include <sys/resource.h>

namespace mixvae {

double peak_rss_mib() {
  struct rusage u {};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return double(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace mixvae

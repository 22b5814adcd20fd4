#pragma once
// Point-to-point text messages between world ranks, for coordination that is not a
// collective: a sweep's coordinator (world rank 0) hands runs to groups that finish at
// different times. Sends never block (MPI_Isend, kept until complete); receives are
// polled, and waiting sleeps between polls instead of spinning in MPI, so a rank that
// waits for work leaves its core to the ranks that train.
#include <memory>
#include <string>

namespace mixvae::dist {

class Mailbox {
 public:
  virtual ~Mailbox() = default;
  virtual void send(int dst, const std::string& msg) = 0;
  // A message from `src` (or from anyone when src < 0) if one is waiting.
  virtual bool poll(int src, int* from, std::string* msg) = 0;
  // Blocks until a message from `src` arrives, sleeping between polls.
  std::string wait_from(int src);
};

// The world's mailbox; null when the process is not an MPI job (a world of one needs none).
std::unique_ptr<Mailbox> make_world_mailbox();

}  // namespace mixvae::dist

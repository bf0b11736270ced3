// The C++ classes of mpx/listener.h (mpx.hpp): Listener, client(), auth_options.
#include <mpx/mpx.hpp>

#include <thread>

#include "support/listener_helpers.hpp"

namespace {

TEST(ListenerCpp, AcceptClientAndWrongKey) {
  mpx::Listener l("127.0.0.1:0", {.authkey = "k"});
  const std::string addr = l.address();
  EXPECT_EQ(l.accept(mpx::try_once), std::nullopt);
  std::thread t([&] {
    auto c = mpx::client(addr, {.authkey = "k"});
    c.send("hi");
    EXPECT_EQ(c.recv_string(std::chrono::seconds(10)), "HI");
  });
  auto c = l.accept(std::chrono::seconds(10));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->recv_string(std::chrono::seconds(10)), "hi");
  c->send("HI");
  t.join();
  EXPECT_EQ(l.last_accepted().rfind("127.0.0.1:", 0), 0u);
  try {
    mpx::client(addr, {.authkey = "wrong"});
    ADD_FAILURE() << "a wrong key connected";
  } catch (const mpx::error &e) {
    EXPECT_EQ(e.code(), mpx::errc::auth);
  }
  try {
    l.accept(std::chrono::seconds(10));
    ADD_FAILURE() << "the failed client was not reported";
  } catch (const mpx::error &e) {
    EXPECT_EQ(e.code(), mpx::errc::auth);
  }
  l.close();
  try {
    l.accept(mpx::try_once);
    ADD_FAILURE() << "accept after close";
  } catch (const mpx::error &e) {
    EXPECT_EQ(e.code(), mpx::errc::closed);
  }
}

}  // namespace

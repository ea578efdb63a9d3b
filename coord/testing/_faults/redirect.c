/* redirect: an LD_PRELOAD shim that reroutes connect(2) to chosen loopback ports.
 *
 * Theory of operation
 * -------------------
 * coord.testing.ZooKeeperEnsemble partitions members by sending every peer link through
 * proxies. Apache ZooKeeper does not only dial the peer addresses in its configuration:
 * its election connection manager also dials back the address a lower server id
 * announced when connecting, i.e. that member's real election port on 127.0.0.1, which
 * would bypass the proxies. This shim, preloaded into each member's JVM, rewrites every
 * connect() to 127.0.0.1:PORT, for PORT in a list (the other members' quorum and election
 * ports), into a connect() to REDIRECT_HOST:PORT, where that member's proxies listen.
 * IPv4 and IPv4-mapped IPv6 addresses are handled (the JVM uses dual-stack sockets).
 *
 * Environment (read once, at the first connect):
 *
 *   REDIRECT_HOST    an IPv4 address (e.g. 127.0.0.11); unset: nothing is rewritten.
 *   REDIRECT_PORTS   comma-separated port numbers (at most 256).
 *
 * Build: gcc -shared -fPIC -O2 -o redirect.so redirect.c -ldl -lpthread
 * (coord.testing._faults.build_redirect does this.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static pthread_once_t once = PTHREAD_ONCE_INIT;
static unsigned short ports[256];
static int nports;
static struct in_addr target;

static void init(void) {
    real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *host = getenv("REDIRECT_HOST");
    const char *list = getenv("REDIRECT_PORTS");
    if (host == NULL || list == NULL || inet_pton(AF_INET, host, &target) != 1) {
        return;
    }
    const char *p = list;
    while (*p != '\0' && nports < 256) {
        char *end;
        long port = strtol(p, &end, 10);
        if (end == p) {
            break;
        }
        if (port > 0 && port < 65536) {
            ports[nports++] = (unsigned short)port;
        }
        p = (*end == ',') ? end + 1 : end;
    }
}

static int listed(unsigned short port) {
    for (int i = 0; i < nports; i++) {
        if (ports[i] == port) {
            return 1;
        }
    }
    return 0;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    pthread_once(&once, init);
    if (nports > 0 && addr != NULL) {
        if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
            struct sockaddr_in copy;
            memcpy(&copy, addr, sizeof copy);
            if (copy.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && listed(ntohs(copy.sin_port))) {
                copy.sin_addr = target;
                return real_connect(fd, (const struct sockaddr *)&copy, sizeof copy);
            }
        } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 copy;
            memcpy(&copy, addr, sizeof copy);
            static const unsigned char loopback[4] = {127, 0, 0, 1};
            if (IN6_IS_ADDR_V4MAPPED(&copy.sin6_addr)
                && memcmp(&copy.sin6_addr.s6_addr[12], loopback, 4) == 0
                && listed(ntohs(copy.sin6_port))) {
                memcpy(&copy.sin6_addr.s6_addr[12], &target, 4);
                return real_connect(fd, (const struct sockaddr *)&copy, sizeof copy);
            }
        }
    }
    return real_connect(fd, addr, len);
}

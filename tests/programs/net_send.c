/* The network family's sends, made the ways programs make them (on 127.0.0.1 only).
 * Usage:
 *   net_send respond               answer DNS queries on UDP 127.0.0.1:53 with NXDOMAIN (10 s)
 *   net_send dns-sendto NAME       one A query for NAME by sendto (no connect)
 *   net_send dns-sendmmsg NAME     A and AAAA queries for NAME in one sendmmsg, as glibc does
 *   net_send dns-tcp NAME          an A query over TCP: listens on 127.0.0.1:53, connects, and
 *                                  sends the length and the message with writev, as glibc does
 *   net_send flow PORT COUNT       COUNT unconnected sendto to 127.0.0.1:PORT, one sendmsg with a
 *                                  name to PORT+1, then a connected send to PORT+2 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static struct sockaddr_in to(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static size_t query(unsigned char *m, const char *name, int qtype) {
    unsigned char head[12] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    memcpy(m, head, 12);
    size_t n = 12;
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        m[n++] = (unsigned char)len;
        memcpy(m + n, p, len);
        n += len;
        p += len + (dot ? 1 : 0);
    }
    m[n++] = 0;
    m[n++] = 0;
    m[n++] = (unsigned char)qtype;
    m[n++] = 0;
    m[n++] = 1;
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: net_send respond | dns-sendto NAME | dns-sendmmsg NAME | dns-tcp NAME | flow PORT COUNT\n");
        return 2;
    }
    unsigned char m[512], m2[512];
    struct sockaddr_in dns = to(53);
    if (strcmp(argv[1], "respond") == 0) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&dns, sizeof dns) < 0) {
            perror("bind 127.0.0.1:53");
            return 1;
        }
        struct timeval tv = {10, 0};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        for (;;) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(s, m, sizeof m, 0, (struct sockaddr *)&from, &fl);
            if (n < 12)
                return 0;
            m[2] |= 0x80; /* QR */
            m[3] = 0x83;  /* RA, NXDOMAIN */
            sendto(s, m, (size_t)n, 0, (struct sockaddr *)&from, fl);
        }
    }
    if (argc < 3) {
        fprintf(stderr, "%s needs an argument\n", argv[1]);
        return 2;
    }
    if (strcmp(argv[1], "dns-sendto") == 0) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        size_t n = query(m, argv[2], 1);
        return sendto(s, m, n, 0, (struct sockaddr *)&dns, sizeof dns) == (ssize_t)n ? 0 : 1;
    }
    if (strcmp(argv[1], "dns-sendmmsg") == 0) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct iovec iov[2] = {{m, query(m, argv[2], 1)}, {m2, query(m2, argv[2], 28)}};
        struct mmsghdr msgs[2];
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < 2; i++) {
            msgs[i].msg_hdr.msg_name = &dns;
            msgs[i].msg_hdr.msg_namelen = sizeof dns;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        return sendmmsg(s, msgs, 2, 0) == 2 ? 0 : 1;
    }
    if (strcmp(argv[1], "dns-tcp") == 0) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(l, (struct sockaddr *)&dns, sizeof dns) < 0 || listen(l, 1) < 0) {
            perror("listen 127.0.0.1:53");
            return 1;
        }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&dns, sizeof dns) < 0) {
            perror("connect");
            return 1;
        }
        size_t n = query(m, argv[2], 1);
        unsigned char len[2] = {(unsigned char)(n >> 8), (unsigned char)n};
        struct iovec iov[2] = {{len, 2}, {m, n}};
        return writev(s, iov, 2) == (ssize_t)(n + 2) ? 0 : 1;
    }
    if (strcmp(argv[1], "flow") == 0 && argc > 3) {
        int port = atoi(argv[2]), count = atoi(argv[3]);
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = to(port), b = to(port + 1), c = to(port + 2);
        for (int i = 0; i < count; i++)
            sendto(s, "ping", 4, 0, (struct sockaddr *)&a, sizeof a);
        struct iovec iov = {"pong", 4};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_name = &b;
        msg.msg_namelen = sizeof b;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        sendmsg(s, &msg, 0);
        int t = socket(AF_INET, SOCK_DGRAM, 0);
        connect(t, (struct sockaddr *)&c, sizeof c);
        send(t, "conn", 4, 0);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}

/* Opens the sockets a sniffer or a packet forger needs: a raw IPv4 ICMP socket, an AF_PACKET
 * socket, and an old-style packet socket (AF_INET + SOCK_PACKET, which the kernel turns into a
 * packet socket); Docker's default capabilities include NET_RAW. Prints what it got.
 * Usage: raw_sockets */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    int packet = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    int old = socket(AF_INET, SOCK_PACKET, htons(ETH_P_ALL));
    printf("raw=%d packet=%d old_packet=%d\n", raw, packet, old);
    return raw < 0 || packet < 0 || old < 0;
}

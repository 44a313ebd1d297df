/interface list
add name=LAN
/interface list member
add interface=ether2 list=LAN
/ip firewall address-list
add address=10.9.0.0/16 list=bad
add address=192.0.2.7 list=bad
/ip firewall layer7-protocol
add name=http regexp="^(get|post) /"
/ip firewall mangle
add action=mark-connection chain=prerouting connection-state=new new-connection-mark=m1 passthrough=yes protocol=tcp
add action=mark-packet chain=forward new-packet-mark=p1 passthrough=no dst-port=80 protocol=tcp
/ip firewall filter
add action=fasttrack-connection chain=forward connection-state=established,related
add action=jump chain=forward jump-target=mine src-address=10.0.0.0/8
add action=drop chain=mine src-address-list=bad
add action=log chain=mine log-prefix=x protocol=udp
add action=return chain=mine dst-port=53 protocol=udp
add action=accept chain=mine connection-mark=m1 limit=10/1s,5:packet
add action=drop chain=forward layer7-protocol=http protocol=tcp dst-port=8080
add action=drop chain=forward protocol=tcp src-address=10.0.0.0/24 dst-port=1000
add action=drop chain=forward protocol=udp src-address=10.0.1.0/24 dst-port=1001
add action=drop chain=forward protocol=tcp src-address=10.0.2.0/24 dst-port=1002
add action=drop chain=forward protocol=udp src-address=10.0.3.0/24 dst-port=1003
add action=drop chain=forward protocol=tcp src-address=10.0.4.0/24 dst-port=1004
add action=drop chain=forward protocol=udp src-address=10.0.5.0/24 dst-port=1005
add action=drop chain=forward protocol=tcp src-address=10.0.6.0/24 dst-port=1006
add action=drop chain=forward protocol=udp src-address=10.0.7.0/24 dst-port=1007
add action=drop chain=forward protocol=tcp src-address=10.0.8.0/24 dst-port=1008
add action=drop chain=forward protocol=udp src-address=10.0.9.0/24 dst-port=1009
add action=drop chain=forward protocol=tcp src-address=10.0.10.0/24 dst-port=1010
add action=drop chain=forward protocol=udp src-address=10.0.11.0/24 dst-port=1011
add action=drop chain=forward protocol=tcp src-address=10.0.12.0/24 dst-port=1012
add action=drop chain=forward protocol=udp src-address=10.0.13.0/24 dst-port=1013
add action=drop chain=forward protocol=tcp src-address=10.0.14.0/24 dst-port=1014
add action=drop chain=forward protocol=udp src-address=10.0.15.0/24 dst-port=1015
add action=reject chain=forward protocol=tcp src-address=10.0.16.0/24 dst-port=1016 reject-with=tcp-reset
add action=drop chain=forward protocol=udp src-address=10.0.17.0/24 dst-port=1017
add action=drop chain=forward protocol=tcp src-address=10.0.18.0/24 dst-port=1018
add action=drop chain=forward protocol=udp src-address=10.0.19.0/24 dst-port=1019
add action=drop chain=forward protocol=tcp src-address=10.0.20.0/24 dst-port=1020
add action=drop chain=forward protocol=udp src-address=10.0.21.0/24 dst-port=1021
add action=drop chain=forward protocol=tcp src-address=10.0.22.0/24 dst-port=1022
add action=drop chain=forward protocol=udp src-address=10.0.23.0/24 dst-port=1023
add action=drop chain=forward protocol=tcp src-address=!10.0.24.0/24 dst-port=1024
add action=drop chain=forward protocol=udp src-address=10.0.25.0/24 dst-port=!1025
add action=drop chain=forward protocol=tcp src-address=10.0.26.0/24 dst-port=1026-2000
add action=drop chain=forward protocol=udp dst-address=10.0.27.0-10.0.27.9 dst-port=1027
add action=drop chain=forward protocol=tcp src-address=10.0.28.0/24 tcp-flags=syn,!ack
add action=drop chain=forward protocol=icmp icmp-options=8:0
add action=drop chain=forward in-interface-list=!LAN connection-state=new
add action=accept chain=forward connection-bytes=1000-0

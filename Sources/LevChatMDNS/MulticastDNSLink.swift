#if canImport(Glibc)
import Glibc
#endif
import LevChatCore
import Logging
import NIOCore
import NIOPosix

/// A network interface the embedded responder speaks on, with its addresses (4 or 16 bytes).
struct MulticastDNSInterface: Sendable {
    let name: String
    let index: Int
    var ipv4: [[UInt8]] = []
    var ipv6: [[UInt8]] = []
    /// NIO's device entries are one per address: one of each family, to join that family's group.
    var ipv4Device: NIONetworkDevice?
    var ipv6Device: NIONetworkDevice?

    /// The interfaces that are up, can multicast and are not loopback, each once, with its
    /// addresses (Avahi's default choice too).
    static func current() -> [MulticastDNSInterface] {
        guard let devices = try? System.enumerateDevices() else { return [] }
        var byIndex: [Int: MulticastDNSInterface] = [:]
        for device in devices where device.multicastSupported {
            guard let address = device.address, let bytes = Self.bytes(address) else { continue }
            if bytes.count == 4 && bytes[0] == 127 { continue }
            if bytes.count == 16 && bytes == [UInt8](repeating: 0, count: 15) + [1] { continue }
            var interface = byIndex[device.interfaceIndex] ?? MulticastDNSInterface(name: device.name, index: device.interfaceIndex)
            if bytes.count == 4 {
                interface.ipv4.append(bytes)
                interface.ipv4Device = interface.ipv4Device ?? device
            } else {
                interface.ipv6.append(bytes)
                interface.ipv6Device = interface.ipv6Device ?? device
            }
            byIndex[device.interfaceIndex] = interface
        }
        return byIndex.values.sorted { $0.index < $1.index }
    }

    static func bytes(_ address: SocketAddress) -> [UInt8]? {
        guard let text = address.ipAddress?.split(separator: "%").first else { return nil }
        let family: CInt
        switch address.protocol {
        case .inet: family = AF_INET
        case .inet6: family = AF_INET6
        default: return nil
        }
        var bytes = [UInt8](repeating: 0, count: family == AF_INET ? 4 : 16)
        guard inet_pton(family, String(text), &bytes) == 1 else { return nil }
        return bytes
    }
}

/// One family's mDNS socket on one interface: UDP 5353 shared with any other stack on the
/// machine (SO_REUSEADDR and SO_REUSEPORT, as avahi-daemon sets them; RFC 6762 §15.1), joined
/// to the mDNS group on that interface only, sending there with TTL 255 (§11).
struct MulticastDNSLink: Sendable {
    enum Family: Sendable { case ipv4, ipv6 }

    /// A packet heard on a link, decoded.
    struct Packet: Sendable {
        let message: DNSMessage
        let source: SocketAddress
        let link: Int
    }

    let channel: any Channel
    let interface: MulticastDNSInterface
    let family: Family
    let group: SocketAddress
    let logger: Logger
    /// Set once the responder withdraws: from then on only `sendNow` (the goodbye) sends. A
    /// class, so every copy of the link sees it.
    let silence = OnceFlag()

    /// The addresses this link's answers carry: on IPv4 both families (as Avahi publishes by
    /// default), on IPv6 the IPv6 ones.
    var addresses: [[UInt8]] { family == .ipv4 ? interface.ipv4 + interface.ipv6 : interface.ipv6 }

    /// A link per interface and family (a family whose socket does not open is left out; the
    /// packets of all go to `packets`). Throws when no interface can multicast or nothing opens.
    static func openAll(packets: AsyncStream<Packet>.Continuation, logger: Logger) async throws(DiscoveryError) -> [MulticastDNSLink] {
        let interfaces = MulticastDNSInterface.current()
        guard !interfaces.isEmpty else {
            packets.finish()
            throw .noMulticastInterface
        }
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        var links: [MulticastDNSLink] = []
        var lastError: (any Error)?
        for interface in interfaces {
            for family in [Family.ipv4, .ipv6] where !(family == .ipv4 ? interface.ipv4 : interface.ipv6).isEmpty {
                do {
                    links.append(try await open(interface, family, number: links.count, on: eventLoop, packets: packets, logger: logger))
                } catch {
                    logger.notice("mdns: no \(family) socket on \(interface.name): \(error)")
                    lastError = error
                }
            }
        }
        guard !links.isEmpty else {
            packets.finish()
            throw .multicastSocket("\(lastError.map { "\($0)" } ?? "no address")")
        }
        return links
    }

    static func open(_ interface: MulticastDNSInterface, _ family: Family, number: Int, on eventLoop: any EventLoop,
                     packets: AsyncStream<Packet>.Continuation, logger: Logger) async throws -> MulticastDNSLink {
        let group = try SocketAddress(ipAddress: family == .ipv4 ? DNSMessage.ipv4Group : DNSMessage.ipv6Group, port: DNSMessage.port)
        let bootstrap = DatagramBootstrap(group: eventLoop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .channelOption(.receivePacketInfo, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        PacketHandler(link: number, interfaceIndex: interface.index, packets: packets, logger: logger))
                }
            }
        let any = family == .ipv4 ? "0.0.0.0" : "::"
        let channel: any Channel
        if family == .ipv6 {
            // IPv6 only, so the IPv4 link of the same interface gets the IPv4 packets.
            channel = try await bootstrap.channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1).bind(host: any, port: DNSMessage.port).get()
        } else {
            channel = try await bootstrap.bind(host: any, port: DNSMessage.port).get()
        }
        do {
            guard let multicast = channel as? any MulticastChannel, let options = channel as? any SocketOptionProvider else {
                throw ChannelError.operationUnsupported
            }
            try await multicast.joinGroup(group, device: family == .ipv4 ? interface.ipv4Device : interface.ipv6Device).get()
            switch family {
            case .ipv4:
                guard let first = interface.ipv4.first else { throw ChannelError.operationUnsupported }
                // NIO passes this option as an Int, 8 bytes, which Linux reads as an ip_mreq:
                // the group (unused here) and then the interface's address, byte for byte.
                let address = ([0, 0, 0, 0] + first).withUnsafeBytes { $0.loadUnaligned(as: Int.self) }
                try await channel.setOption(ChannelOptions.Types.SocketOption(level: .ip, name: .ip_multicast_if), value: address).get()
                try await options.setIPMulticastTTL(255).get()
            case .ipv6:
                try await options.setIPv6MulticastIF(CUnsignedInt(interface.index)).get()
                try await options.setIPv6MulticastHops(255).get()
            }
        } catch {
            try? await channel.close()
            throw error
        }
        return MulticastDNSLink(channel: channel, interface: interface, family: family, group: group, logger: logger)
    }

    /// To the group, or to one asker (a legacy query, RFC 6762 §6.7).
    func send(_ message: DNSMessage, to destination: SocketAddress? = nil) {
        // An answer that waited its 20-120 ms past the goodbye would put the records back in
        // every cache for their whole TTL: the simulated LAN saw a withdrawn room stay listed.
        guard !silence.isSet, let bytes = try? message.encoded() else { return }
        let buffer = channel.allocator.buffer(bytes: bytes)
        let interface = interface.name
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination ?? group, data: buffer)).whenFailure { error in
            logger.debug("mdns: could not send on \(interface): \(error)")
        }
    }

    /// After `delay` (RFC 6762 §6: 20–120 ms for answers with shared records), on the link's loop.
    func send(_ message: DNSMessage, to destination: SocketAddress? = nil, after delay: TimeAmount) {
        let link = self
        channel.eventLoop.scheduleTask(in: delay) { link.send(message, to: destination) }
    }

    /// Sent before it returns (a goodbye goes out before the socket closes).
    func sendNow(_ message: DNSMessage) async {
        guard let bytes = try? message.encoded() else { return }
        let buffer = channel.allocator.buffer(bytes: bytes)
        do {
            try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: group, data: buffer)).get()
        } catch {
            logger.debug("mdns: could not send on \(interface.name): \(error)")
        }
    }

    func close() async {
        try? await channel.close()
    }
}

/// Decodes what a link hears into packets for the responder. A packet that is not a DNS message
/// is dropped: anyone on the LAN can send anything to 5353.
private final class PacketHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let link: Int
    let interfaceIndex: Int
    let packets: AsyncStream<MulticastDNSLink.Packet>.Continuation
    let logger: Logger

    init(link: Int, interfaceIndex: Int, packets: AsyncStream<MulticastDNSLink.Packet>.Continuation, logger: Logger) {
        self.link = link
        self.interfaceIndex = interfaceIndex
        self.packets = packets
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        // Every socket on 5353 hears the group on every interface; each link answers for its own.
        if let info = envelope.metadata?.packetInfo, info.interfaceIndex != interfaceIndex { return }
        do {
            let message = try DNSMessage(decoding: envelope.data.readableBytesView)
            packets.yield(MulticastDNSLink.Packet(message: message, source: envelope.remoteAddress, link: link))
        } catch {
            logger.debug("mdns: a packet from \(envelope.remoteAddress) is not a DNS message: \(error)")
        }
    }
}

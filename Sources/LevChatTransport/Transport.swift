#if canImport(Glibc)
import Glibc
#endif
import LevChatCore
import NIOCore
import NIOPosix
import Synchronization

/// A TCP connection: frame payloads in, whole frames (`Framing`) out.
public typealias FramedChannel = NIOAsyncChannel<ByteBuffer, ByteBuffer>
public typealias FramedListener = NIOAsyncChannel<FramedChannel, Never>

/// A connection's `NIOAsyncChannel` that finishes its writer and closes the connection when the
/// last reference to it goes, instead of trapping.
///
/// Every connection is served through `executeThenClose`, which finishes and closes it in order.
/// But NIO can hand an accepted connection to a stream that will never give it out (a crowd of 300
/// peers on two cores made it happen in the host: `NIOAsyncChannelHandler.channelActive` released
/// the last reference, and `init(wrappingChannelSynchronously:)`'s writer traps then:
/// "Deinited NIOAsyncWriter without calling finish()", apple/swift-nio#3481). Such a connection
/// is now closed, and its peer sees a closed connection. NIO marks the initializer that does this
/// deprecated only because it prefers explicit teardown; it is reached through a protocol so the
/// build stays free of warnings (Docs/ARCHITECTURE.md, "Concurrency").
protocol ClosingOnRelease {
    init(synchronouslyWrapping channel: any Channel, configuration: FramedChannel.Configuration) throws
}

extension NIOAsyncChannel: ClosingOnRelease where Inbound == ByteBuffer, Outbound == ByteBuffer {}

extension ClosingOnRelease {
    static func closingOnRelease(_ channel: any Channel) throws -> Self {
        try Self(synchronouslyWrapping: channel, configuration: FramedChannel.Configuration())
    }
}

/// Where links come from: TCP for real, or (in the in-process whole-room tests) a switchboard on
/// loopback that can cut, hold and refuse links between simulated machines
/// (Docs/TESTING.md, "In-process rooms"). The peer opens every listener and connection through it.
public protocol LinkNetwork: Sendable {
    /// See `Transport.listen`.
    func listen(host: String, port: Int, sendBacklog: Int, group: any EventLoopGroup,
                onDescriptorsExhausted: @escaping @Sendable () -> Void) async throws -> FramedListener
    /// See `Transport.connect`.
    func connect(host: String, port: Int, timeout: Duration) async throws(ConnectError) -> FramedChannel
    /// The clock of every peer and link on this network: the system's, or a test's virtual one.
    var clock: PeerClock { get }
}

extension LinkNetwork {
    public var clock: PeerClock { .system }
}

/// The real network.
public struct TCPNetwork: LinkNetwork {
    /// The address outgoing connections come from, when the peer listens on one address
    /// (`--bind 192.0.2.7`): the others then see it at the address it listens on, and a host's
    /// limits per address count it alone. Nil (listening on `::` or `0.0.0.0`): the system
    /// chooses, as it does for a destination of the other address family.
    public let source: String?

    public init(source: String? = nil) {
        self.source = source.flatMap { address in
            guard let parsed = (try? SocketAddress(ipAddress: address, port: 0))?.ipAddress, parsed != "::", parsed != "0.0.0.0" else { return nil }
            return address
        }
    }

    public func listen(host: String, port: Int, sendBacklog: Int, group: any EventLoopGroup,
                       onDescriptorsExhausted: @escaping @Sendable () -> Void) async throws -> FramedListener {
        try await Transport.listen(host: host, port: port, sendBacklog: sendBacklog, group: group,
                                   onDescriptorsExhausted: onDescriptorsExhausted)
    }

    public func connect(host: String, port: Int, timeout: Duration) async throws(ConnectError) -> FramedChannel {
        let from = source.flatMap { $0.contains(":") == host.contains(":") ? $0 : nil }
        return try await Transport.connect(host: host, port: port, timeout: timeout, source: from)
    }
}

/// Adds a handler in front of a new connection's framing (a test switchboard's tap).
public typealias ChannelTap = @Sendable (any Channel) throws -> Void

public enum Transport {
    static func configure(_ channel: any Channel, tap: ChannelTap? = nil) throws {
        try tap?(channel)
        // Inbound frames are decoded here; outbound, writers frame their records themselves
        // (`Framing`), so a broadcast is framed once for every member.
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()), name: framesHandler)
    }

    private static let framesHandler = "frames"

    /// From now on the connection's frame payloads go to `reader` where they are read, on the
    /// channel's event loop, instead of to its `NIOAsyncChannel` (the host's member links:
    /// Docs/ARCHITECTURE.md, "The host's hot path"). `reader` also sees the channel's other inbound
    /// events, and passes on those the `NIOAsyncChannel` needs (its end). Call on that loop.
    public static func divert(_ channel: any Channel, to reader: some ChannelHandler) throws {
        let frames = try channel.pipeline.syncOperations.context(name: framesHandler)
        try channel.pipeline.syncOperations.addHandler(reader, position: .after(frames.handler))
    }

    /// Opens a listener; port 0 picks a free port (read it from `localAddress`). A connection with
    /// more than `sendBacklog` bytes unsent stops being writable (the host then drops it).
    /// `onDescriptorsExhausted` is called (at most every ten seconds) when a connection cannot be
    /// accepted because this process or the system has no descriptor left.
    public static func listen(host: String, port: Int, sendBacklog: Int = 4 << 20,
                              group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                              onDescriptorsExhausted: @escaping @Sendable () -> Void = {},
                              tap: ChannelTap? = nil) async throws -> FramedListener {
        var bootstrap = ServerBootstrap(group: group)
        if host.contains(":") {
            // `::` takes IPv4 too (as ::ffff:a.b.c.d), whatever the system's bindv6only says; an
            // IPv6 address is that address alone.
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only),
                                                      value: host == "::" ? 0 : 1)
        }
        return try await bootstrap
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptFailureReporter(onDescriptorsExhausted))
                }
            }
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // A member with this much unsent is not keeping up; the host drops it (isWritable false).
            .childChannelOption(.writeBufferWaterMark, value: .init(low: sendBacklog / 4, high: sendBacklog))
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try configure(channel, tap: tap)
                    return try FramedChannel.closingOnRelease(channel)
                }
            }
    }

    /// Connects to `host`; an IPv6 link-local address is tried on each local interface that has
    /// one when its scope names none of this machine's (another machine's interface name, as a
    /// roster or a redirect carries it) or none at all.
    /// `source` binds the connection's own address (a switchboard's machine on loopback); `tap`
    /// is added in front of its framing.
    public static func connect(host: String, port: Int, timeout: Duration = .seconds(3),
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               source: String? = nil, tap: ChannelTap? = nil) async throws(ConnectError) -> FramedChannel {
        let scoped = LinkLocal.candidates(for: host)
        guard scoped.count > 1 || scoped.first != host else {
            return try await connectOnce(host: host, port: port, timeout: timeout, group: group, source: source, tap: tap)
        }
        var lastError = ConnectError.unreachable(Endpoint.format(host: host, port: port), "no local interface has an IPv6 link-local address")
        for candidate in scoped {
            do { return try await connectOnce(host: candidate, port: port, timeout: timeout, group: group, source: source, tap: tap) } catch { lastError = error }
        }
        throw lastError
    }

    private static func connectOnce(host: String, port: Int, timeout: Duration, group: any EventLoopGroup,
                                    source: String?, tap: ChannelTap?) async throws(ConnectError) -> FramedChannel {
        do {
            var bootstrap = ClientBootstrap(group: group)
            if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
            return try await bootstrap
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(TimeAmount(timeout))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try configure(channel, tap: tap)
                        return try FramedChannel.closingOnRelease(channel)
                    }
                }
        } catch {
            throw .unreachable(Endpoint.format(host: host, port: port), ConnectError.describe(error))
        }
    }
}

/// Sees the listener's accept errors: running out of descriptors is worth telling the user
/// (NIO backs off and retries by itself, silently). NIO's `AcceptBackoffHandler`, after this one,
/// keeps I/O errors from the listener's accept stream, which any error would end for good
/// (`GuessingLimitTests` checks that a host accepts again after running out).
final class AcceptFailureReporter: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    private let report: @Sendable () -> Void
    private let lastReport = Mutex<NIODeadline?>(nil)

    init(_ report: @escaping @Sendable () -> Void) {
        self.report = report
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let io = error as? IOError, io.errnoCode == EMFILE || io.errnoCode == ENFILE {
            let now = NIODeadline.now()
            let due = lastReport.withLock { last in
                guard last.map({ now - $0 >= .seconds(10) }) ?? true else { return false }
                last = now
                return true
            }
            if due { report() }
        }
        context.fireErrorCaught(error)
    }
}

extension Transport {
    /// Raises this process's soft limit on open descriptors to its hard limit (a host of hundreds
    /// of members needs one per member) and returns the limit now in force.
    @discardableResult
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }
}

public enum ConnectError: Error, Equatable, CustomStringConvertible {
    /// Nothing answered at that address (refused, timed out, no route).
    case unreachable(String, String)
    /// Something answered but the handshake failed (or the connection ended during it).
    case handshake(HandshakeError)

    /// The address answered with a TCP reset: its machine is up and reachable, nothing listens.
    public var wasRefused: Bool {
        if case .unreachable(_, let why) = self { return why == ConnectError.refused }
        return false
    }

    static let refused = "connection refused"

    public var description: String {
        switch self {
        case .unreachable(let endpoint, let why): "could not reach \(endpoint): \(why)"
        case .handshake(let error): error.description
        }
    }

    public static func describe(_ error: any Error) -> String {
        if let io = error as? IOError {
            switch io.errnoCode {
            case 111: return refused
            case 113, 101: return "no route to host"
            case 110: return "timed out"
            case 98: return "that port is in use here, by another room or program"
            case 99: return "that address is not one of this machine's"
            default: return String(cString: strerror(io.errnoCode)).lowercased()
            }
        }
        if let timeout = error as? ChannelError, case .connectTimeout = timeout { return "timed out" }
        if let connection = error as? NIOConnectionError {
            if let first = connection.connectionErrors.first { return describe(first.error) }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError { return "could not resolve the name (\(dns))" }
            return "connection failed"
        }
        return "\(error)"
    }
}

/// IPv6 link-local addresses (fe80::/10) need a scope, the interface to use, and an interface name
/// means nothing on another machine.
public enum LinkLocal {
    public static func isLinkLocal(_ host: String) -> Bool { Endpoint.isLinkLocal(host) }

    /// The scoped forms of `host` to try: itself when it is not link-local or its scope is a local
    /// interface; otherwise the address on each local interface that has a link-local address.
    public static func candidates(for host: String) -> [String] {
        guard isLinkLocal(host) else { return [host] }
        let parts = host.split(separator: "%", maxSplits: 1).map(String.init)
        let interfaces = localInterfaces()
        if parts.count == 2, interfaces.contains(parts[1]) { return [host] }
        return interfaces.isEmpty ? [host] : interfaces.map { parts[0] + "%" + $0 }
    }

    /// Interfaces of this machine with an IPv6 link-local address, in a stable order.
    public static func localInterfaces() -> [String] {
        let devices = (try? System.enumerateDevices()) ?? []
        return Array(Set(devices.compactMap { device -> String? in
            guard let ip = device.address?.ipAddress, isLinkLocal(ip) else { return nil }
            return device.name
        })).sorted()
    }
}

extension Transport {
    /// Runs `serve` for every connection the listener accepts, until the listener closes or the
    /// calling task is cancelled, then waits for the connections under way (cancelled) to end.
    ///
    /// Cancelling does not stop the loop directly: it closes the listener, and the loop drains
    /// what was already accepted, so every accepted connection reaches `serve`. NIO traps when an
    /// accepted connection is released unserved (`NIOAsyncWriter` deinit, apple/swift-nio#3481),
    /// which a crowd of 300 peers hit at every role change and many a peer at its exit.
    /// `serve` must end in `executeThenClose` (as `SecureLink.accept` does), even when cancelled.
    /// `onFailure` hears why the listener stopped accepting, when it failed (not when closed).
    public static func serveEach(_ listener: FramedListener, onFailure: @escaping @Sendable (any Error) -> Void = { _ in },
                                 _ serve: @escaping @Sendable (FramedChannel) async -> Void) async {
        let channel = listener.channel
        // Unstructured, so the caller's cancellation does not end the iteration early.
        let loop = Task {
            try? await listener.executeThenClose { inbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in inbound {
                            group.addTask { await serve(connection) }
                        }
                    } catch {
                        // The connections accepted so far are still served.
                        onFailure(error)
                    }
                    group.cancelAll()
                }
            }
        }
        await withTaskCancellationHandler {
            await loop.value
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    /// Closes a listener that will serve nothing (its peer gave up before the room began); any
    /// connection it accepted meanwhile is closed properly (see `serveEach`).
    public static func close(_ listener: FramedListener) async {
        listener.channel.close(promise: nil)
        await serveEach(listener) { connection in try? await connection.executeThenClose { _, _ in } }
    }
}

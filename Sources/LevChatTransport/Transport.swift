#if canImport(Glibc)
import Glibc
#endif
import LevChatCore
import NIOCore
import NIOPosix
import Synchronization

/// A TCP connection carrying frame payloads both ways.
public typealias FramedChannel = NIOAsyncChannel<ByteBuffer, ByteBuffer>
public typealias FramedListener = NIOAsyncChannel<FramedChannel, Never>

public enum Transport {
    static func configure(_ channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(FrameEncoder())
    }

    /// Opens a listener; port 0 picks a free port (read it from `localAddress`). A connection with
    /// more than `sendBacklog` bytes unsent stops being writable (the host then drops it).
    /// `onDescriptorsExhausted` is called (at most every ten seconds) when a connection cannot be
    /// accepted because this process or the system has no descriptor left.
    public static func listen(host: String, port: Int, sendBacklog: Int = 4 << 20,
                              group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                              onDescriptorsExhausted: @escaping @Sendable () -> Void = {}) async throws -> FramedListener {
        try await ServerBootstrap(group: group)
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
                    try configure(channel)
                    return try FramedChannel(wrappingChannelSynchronously: channel)
                }
            }
    }

    public static func connect(host: String, port: Int, timeout: Duration = .seconds(3),
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws(ConnectError) -> FramedChannel {
        do {
            return try await ClientBootstrap(group: group)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(TimeAmount(timeout))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try configure(channel)
                        return try FramedChannel(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw .unreachable(Endpoint.format(host: host, port: port), ConnectError.describe(error))
        }
    }
}

/// Sees the listener's accept errors: running out of descriptors is worth telling the user
/// (NIO backs off and retries by itself, silently).
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
            default: return io.description
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

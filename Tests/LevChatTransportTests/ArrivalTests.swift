import LevChatCore
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import LevChatTransport

/// `PeerClock.lastArrival`: when the kernel took a connection's last bytes, read or not, over real
/// TCP on 127.0.0.1 (Docs/MIGRATION.md, "Failure detection").
@Suite(.timeLimit(.minutes(1))) struct ArrivalTests {
    /// Accepts one connection with reads off, so whatever arrives stays unread in its socket.
    final class Accepted: Sendable {
        let channel = Mutex<(any Channel)?>(nil)
        let accepted = AsyncStream<Void>.makeStream()
        /// What the server end reads, once it reads.
        let reads = AsyncStream<String>.makeStream()
    }

    final class Reads: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let sink: AsyncStream<String>.Continuation
        init(_ sink: AsyncStream<String>.Continuation) { self.sink = sink }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            sink.yield(String(buffer: unwrapInboundIn(data)))
        }
    }

    /// Runs `body` with both ends of one connection (the server end reads nothing), then closes all.
    func withConnection(_ body: (_ server: any Channel, _ client: any Channel, _ reads: AsyncStream<String>) async throws -> Void) async throws {
        let (server, client, listener, reads) = try await connectedPair()
        defer { for channel in [client, server, listener] { channel.close(promise: nil) } }
        try await body(server, client, reads)
    }

    func connectedPair() async throws -> (server: any Channel, client: any Channel, listener: any Channel, reads: AsyncStream<String>) {
        let accepted = Accepted()
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                accepted.channel.withLock { $0 = channel }
                accepted.accepted.continuation.yield()
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Reads(accepted.reads.continuation)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        for await _ in accepted.accepted.stream { break }
        let server = try #require(accepted.channel.withLock { $0 })
        return (server, client, listener, accepted.reads.stream)
    }

    @Test func bytesThatArrivedUnreadAreSeenWhenTheyArrived() async throws {
        try await withConnection { server, client, reads in
            let clock = PeerClock.system
            let sent = clock.now().monotonic
            try await client.writeAndFlush(ByteBuffer(string: "ping")).get()
            try await Task.sleep(for: .milliseconds(300))
            let (arrival, now) = try await server.eventLoop.submit { (clock.lastArrival(on: server), clock.now().monotonic) }.get()
            let arrived = try #require(arrival)
            // The kernel counts in milliseconds: the arrival is after the write (less a tick of its
            // clock) and before this reading, and it is not "now": nothing arrived since.
            #expect(arrived >= sent - .milliseconds(20))
            #expect(arrived <= now - .milliseconds(200))
            // They were still unread, which is the case this is for: the server end reads them
            // only now.
            try await server.setOption(.autoRead, value: true).get()
            var read = ""
            for await chunk in reads {
                read += chunk
                if read.count >= 4 { break }
            }
            #expect(read == "ping")
        }
    }

    @Test func unknownOffTheLoopAndOnAVirtualClock() async throws {
        try await withConnection { server, client, _ in
            try await client.writeAndFlush(ByteBuffer(string: "ping")).get()
            // Off the channel's loop: nil, rather than a wait on the loop.
            #expect(PeerClock.system.lastArrival(on: server) == nil)
            // A virtual clock's time is not the kernel's.
            let virtual = PeerClock(virtual: VirtualClock())
            #expect(try await server.eventLoop.submit { virtual.lastArrival(on: server) }.get() == nil)
            #expect(try await server.eventLoop.submit { PeerClock.system.lastArrival(on: server) }.get() != nil)
        }
    }
}

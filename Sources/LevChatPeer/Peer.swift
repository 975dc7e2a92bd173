import LevChatAvahi
import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The two ways to be in a room.
public enum Peer {
    /// Makes a new room with a random code and hosts it until the user leaves. With `advertise`,
    /// the room is published over mDNS and withdrawn when the host leaves.
    public static func create(settings: PeerSettings, advertise: Bool, console: Console, logger: Logger,
                              input: AsyncStream<UserInput>) async -> PeerOutcome {
        let code = RoomCode.random()
        let keys: RoomKeys
        do {
            keys = try RoomKeys(code: code, salt: RoomKeys.randomSalt(), cost: settings.kdfCost)
        } catch {
            return .connectFailed(.other("could not derive the room key: \(error)"))
        }
        // One loop owns the whole room: the listener, every member connection and the room actor.
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let listener: FramedListener
        do {
            listener = try await Transport.listen(host: settings.bindHost, port: settings.port,
                                                  sendBacklog: settings.limits.sendBacklogBytes, group: eventLoop)
        } catch {
            return .connectFailed(.other("could not listen on \(Endpoint.format(host: settings.bindHost, port: settings.port)): \(ConnectError.describe(error))"))
        }
        let port = listener.channel.localAddress?.port ?? settings.port
        let me = NodeID.random()
        let discovery = AvahiDiscovery(logger: logger)
        var advertising: (any RoomAdvertising)?
        if advertise {
            do {
                advertising = try await discovery.advertise(RoomAdvertisement(keys: keys, host: me, epoch: 1, port: port))
            } catch {
                try? await listener.executeThenClose { _ in }
                return .discoveryUnavailable(error)
            }
        }
        console.showRoom(code: code, name: settings.name, port: port)
        let host = HostService(keys: keys, me: me,
                               endpoints: LocalEndpoints.list(bindHost: settings.bindHost, port: port),
                               eventLoop: eventLoop, settings: settings, console: console, logger: logger)
        return await withDiscardingTaskGroup { group in
            if let advertising { group.addTask { await discovery.supervise(advertising) } }
            let outcome = await host.run(listener: listener, input: input)
            await advertising?.withdraw()
            return outcome
        }
    }

    /// Joins the room with this code: at `peer` (`host:port`) when given, otherwise wherever mDNS
    /// finds it within `settings.discoveryTimeout`.
    public static func join(code: RoomCode, peer: String?, settings: PeerSettings, console: Console,
                            logger: Logger, input: AsyncStream<UserInput>) async -> PeerOutcome {
        let keyring = RoomKeyring(code: code, minimumCost: settings.kdfCost)
        let member = MemberService(keyring: keyring, settings: settings, console: console, logger: logger)
        if let peer {
            let once = Once(peer)
            return await member.run(nextCandidate: { once.take() }, input: input)
        }
        let events: AsyncStream<DiscoveryEvent>
        do {
            events = try await AvahiDiscovery(logger: logger).browse()
        } catch {
            return .discoveryUnavailable(error)
        }
        let finder = RoomFinder(keyring: keyring, logger: logger)
        let deadline = ContinuousClock.now + settings.discoveryTimeout
        return await withDiscardingTaskGroup { group in
            group.addTask { await finder.consume(events) }
            let outcome = await member.run(nextCandidate: {
                // Wait for the next matching address until the deadline. Records of machines that
                // vanished linger in caches, so a candidate that does not answer just means "next".
                while ContinuousClock.now < deadline {
                    if let next = finder.nextEndpoint() { return next }
                    try? await Task.sleep(for: .milliseconds(10))
                }
                return nil
            }, input: input)
            group.cancelAll()
            return outcome
        }
    }
}

/// Hands out one value, once.
final class Once: Sendable {
    private let value: Mutex<String?>
    init(_ value: String) { self.value = Mutex(value) }
    func take() -> String? { value.withLock { v in defer { v = nil }; return v } }
}

/// The addresses a listener can be reached at, for the roster.
enum LocalEndpoints {
    static func list(bindHost: String, port: Int) -> [String] {
        guard bindHost == "0.0.0.0" || bindHost == "::" else { return [Endpoint.format(host: bindHost, port: port)] }
        let devices = (try? System.enumerateDevices()) ?? []
        let addresses = devices.compactMap { device -> String? in
            guard let ip = device.address?.ipAddress, !ip.hasPrefix("127."), ip != "::1", !ip.hasPrefix("fe80") else { return nil }
            if bindHost == "0.0.0.0" && ip.contains(":") { return nil }
            return Endpoint.format(host: ip, port: port)
        }
        return Array(Set(addresses)).sorted()
    }
}

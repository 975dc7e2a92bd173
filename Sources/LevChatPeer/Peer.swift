import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The two ways into a room. Either way the peer then stays in the room across host changes
/// (`RoomPeer`).
public enum Peer {
    /// Makes a new room with a random code and hosts it until the user leaves (or hands it on).
    /// With `advertise`, the room is published over mDNS and withdrawn when this peer leaves.
    public static func create(settings: PeerSettings, identity: PeerIdentity, advertise: Bool, console: Console, logger: Logger,
                              input: StandardInput) async -> PeerOutcome {
        let code = RoomCode.random(length: settings.codeLength)
        let grant = RoomGrant.random()
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        var settings = settings
        let listener: FramedListener
        do {
            (listener, settings.bindHost) = try await listen(settings, on: eventLoop, console: console)
        } catch {
            return .connectFailed(.cannotListen("could not listen on \(Endpoint.format(host: settings.bindHost, port: settings.port)): \(ConnectError.describe(error))"))
        }
        let port = listener.channel.localAddress?.port ?? settings.port
        var advertising: (any RoomAdvertising)?
        if advertise {
            do {
                advertising = try await settings.discovery(logger).advertise(
                    RoomAdvertisement(room: grant.roomID, host: identity.node, epoch: 1, port: port))
            } catch {
                await Transport.close(listener)
                return .discoveryUnavailable(error)
            }
        }
        console.showRoom(code: code, name: settings.name, port: port)
        let room = HostRoom(identity: identity, name: settings.name, endpoints: LocalEndpoints.list(bindHost: settings.bindHost, port: port),
                            grant: grant, limits: settings.limits, timings: settings.timings,
                            firstSenderSeq: RunSequence.first(wallMillis: Timestamp.nowMillis()))
        console.show(room.createdEvent)
        let keyring = RoomKeyring(code: code, grant: grant)
        let addressGuard = guardAgainstGuessing(settings, console: console)
        let host = HostService(room: room, keyring: keyring, guard: addressGuard, eventLoop: eventLoop, settings: settings,
                               console: console, logger: logger)
        let peer = RoomPeer(role: .host(host), identity: identity, keyring: keyring, guard: addressGuard, listener: listener,
                            eventLoop: eventLoop, advertising: advertising, advertise: advertise, settings: settings,
                            console: console, logger: logger)
        return await peer.run(firstCandidates: { nil }, input: input)
    }

    /// Joins the room with this code: at `peer` (`host:port`) when given, otherwise by trying the
    /// rooms mDNS finds within `settings.discoveryTimeout` until one's host proves the code. A peer
    /// that joined through mDNS advertises the room if it ever becomes its host.
    public static func join(code: RoomCode, peer: String?, settings: PeerSettings, identity: PeerIdentity, console: Console,
                            logger: Logger, input: StandardInput) async -> PeerOutcome {
        let keyring = RoomKeyring(code: code)
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        var settings = settings
        let listener: FramedListener
        do {
            (listener, settings.bindHost) = try await listen(settings, on: eventLoop, console: console)
        } catch {
            return .connectFailed(.cannotListen("could not open a listening port on \(settings.bindHost): \(ConnectError.describe(error))"))
        }
        let session = MemberSession(identity: identity, name: settings.name, now: settings.clock.now(), limits: settings.limits, timings: settings.timings,
                                    firstSenderSeq: RunSequence.first(wallMillis: Timestamp.nowMillis()))
        let member = MemberService(session: session, keyring: keyring, settings: settings, console: console, logger: logger)
        let room = RoomPeer(role: .member(member), identity: identity, keyring: keyring,
                            guard: guardAgainstGuessing(settings, console: console), listener: listener, eventLoop: eventLoop,
                            advertising: nil, advertise: peer == nil, settings: settings, console: console, logger: logger)
        if let peer {
            let once = Once(peer)
            return await room.run(firstCandidates: { once.take() }, input: input)
        }
        let events: AsyncStream<DiscoveryEvent>
        do {
            events = try await settings.discovery(logger).browse()
        } catch {
            await Transport.close(listener)
            return .discoveryUnavailable(error)
        }
        let finder = RoomFinder(logger: logger)
        let matcher = RoomMatcher(finder: finder, network: settings.network, keyring: keyring, me: identity.node, timeout: settings.connectTimeout)
        let deadline = settings.clock.now().monotonic + settings.discoveryTimeout
        return await withDiscardingTaskGroup { group in
            group.addTask { await finder.consume(events, changed: matcher.roomsChanged) }
            // Rooms are checked several at a time; the join goes to one whose host proved the code.
            // Records of machines that vanished linger in caches: one that does not answer just
            // costs its own timeout, beside the others. Rooms that refused the code were simply
            // not ours; when nothing else was found, that is what the user hears.
            let outcome = await room.run(firstCandidates: { await matcher.next(until: deadline) }, input: input)
            matcher.stop()
            group.cancelAll()
            let refused = finder.roomsThatRefused
            if outcome == .roomNotFound && refused > 0 {
                return .connectFailed(.wrongCode(refused == 1 ? "the room on this network did not accept it"
                                                              : "none of the \(refused) rooms on this network accepted it"))
            }
            return outcome
        }
    }

    /// The guessing limits of whichever role this peer plays; the user hears when an address
    /// starts being refused (never for one stray failure: joiners of other rooms try us too).
    static func guardAgainstGuessing(_ settings: PeerSettings, console: Console) -> AddressGuard {
        // One notice per flooding address: many addresses (IPv6) must not buy many lines.
        let flooding = RefusalNotices(clock: settings.clock) { console.show(.notice($0)) }
        return AddressGuard(policy: settings.guessing, budget: settings.guessBudget, clock: settings.clock, onFlooded: { address in
            flooding.notice("\(address) has \(AddressGuard.maxUnfinishedPerAddress) connections that have not finished the handshake; closing its new ones until they end")
        }, onGuessing: { wrong in
            let budget = settings.guessBudget.perMinute
            console.show(.notice("the room code is being guessed at: \(wrong) wrong code\(wrong == 1 ? "" : "s") in the last minute; joins now wait their turn (at most \(budget) wrong answers a minute)"))
        }) { address, block in
            console.show(.notice("\(address) failed to prove the room code too often (\(settings.guessing.maximumFailures) times in a minute or \(settings.guessing.maximumFailuresPerHour) in an hour); refusing it for \(block.components.seconds) s"))
        }
    }

    /// One event loop owns the listener, every connection it accepts and, when this peer hosts,
    /// the room actor.
    /// The default `::` takes IPv6 and IPv4 on one socket; where IPv6 is not there at all, the
    /// listener falls back to IPv4 alone (`0.0.0.0`).
    /// Returns the listener and the address it took.
    static func listen(_ settings: PeerSettings, on eventLoop: any EventLoop,
                       console: Console) async throws -> (FramedListener, bound: String) {
        let exhausted: @Sendable () -> Void = {
            console.diagnostic("levchat-peer: out of file descriptors: new connections wait until some close (raise ulimit -n)")
        }
        do {
            return (try await settings.network.listen(host: settings.bindHost, port: settings.port,
                                                      sendBacklog: settings.limits.sendBacklogBytes, group: eventLoop,
                                                      onDescriptorsExhausted: exhausted), settings.bindHost)
        } catch where settings.bindHost == "::" && Self.noIPv6(error) {
            return (try await settings.network.listen(host: "0.0.0.0", port: settings.port,
                                                      sendBacklog: settings.limits.sendBacklogBytes, group: eventLoop,
                                                      onDescriptorsExhausted: exhausted), "0.0.0.0")
        }
    }

    /// The system has no IPv6 (a kernel without it, or `ipv6.disable=1`).
    static func noIPv6(_ error: any Error) -> Bool {
        guard let io = error as? IOError else { return false }
        return [EAFNOSUPPORT, EADDRNOTAVAIL, EPROTONOSUPPORT].contains(io.errnoCode)
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
    /// Every address of every interface the listener takes (IPv4 first, then IPv6, link-local
    /// last and scoped with this machine's interface name; the connecting side puts its own).
    static func list(bindHost: String, port: Int) -> [String] {
        guard bindHost == "0.0.0.0" || bindHost == "::" else { return [Endpoint.format(host: bindHost, port: port)] }
        let devices = (try? System.enumerateDevices()) ?? []
        let addresses = Set(devices.compactMap { device -> String? in
            guard let ip = device.address?.ipAddress, !ip.hasPrefix("127."), ip != "::1" else { return nil }
            if bindHost == "0.0.0.0" && ip.contains(":") { return nil }
            return LinkLocal.isLinkLocal(ip) ? ip + "%" + device.name : ip
        })
        func rank(_ ip: String) -> Int { !ip.contains(":") ? 0 : LinkLocal.isLinkLocal(ip) ? 2 : 1 }
        return addresses.sorted { (rank($0), $0) < (rank($1), $1) }.map { Endpoint.format(host: $0, port: port) }
    }
}

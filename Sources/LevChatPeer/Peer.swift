import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import NIOPosix

/// The two ways to be in a room.
public enum Peer {
    /// Makes a new room with a random code and hosts it until the user leaves.
    /// `announce` runs once the room exists (the CLI prints the code there).
    public static func create(settings: PeerSettings, console: Console, logger: Logger,
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
            listener = try await Transport.listen(host: settings.bindHost, port: settings.port, group: eventLoop)
        } catch {
            return .connectFailed(.other("could not listen on \(Endpoint.format(host: settings.bindHost, port: settings.port)): \(ConnectError.describe(error))"))
        }
        let port = listener.channel.localAddress?.port ?? settings.port
        console.showRoom(code: code, name: settings.name, port: port)
        let host = HostService(keys: keys, me: NodeID.random(),
                               endpoints: LocalEndpoints.list(bindHost: settings.bindHost, port: port),
                               eventLoop: eventLoop, settings: settings, console: console, logger: logger)
        return await host.run(listener: listener, input: input)
    }

    /// Joins the room with this code at a known address (`--peer`).
    public static func join(code: RoomCode, host: String, port: Int, settings: PeerSettings, console: Console,
                            logger: Logger, input: AsyncStream<UserInput>) async -> PeerOutcome {
        let keyring = RoomKeyring(code: code, minimumCost: settings.kdfCost)
        let member = MemberService(keyring: keyring, settings: settings, console: console, logger: logger)
        return await member.run(host: host, port: port, input: input)
    }
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

#if canImport(Glibc)
import Glibc
#endif
import LevChatAvahi
import LevChatCore
import Logging

/// `levchat-peer doctor`: what to check when "nobody can see my room".
public enum NetworkDoctor {
    public struct Interface: Sendable {
        public var name: String
        public var addresses: [String]
        public var up: Bool
        public var multicast: Bool
    }

    public struct Daemon: Sendable {
        public var version: String
        public var hostName: String
    }

    public struct Report: Sendable {
        public var daemon: Result<Daemon, DiscoveryError>
        public var interfaces: [Interface]
        /// Rooms seen, keyed by public room id: the hosts advertising each.
        public var rooms: [String: Set<String>]
        public var advertisements: Int
        public var usableInterfaces: [Interface] { interfaces.filter { $0.up && $0.multicast && $0.name != "lo" } }
    }

    public static func examine(browseFor duration: Duration, logger: Logger) async -> Report {
        let daemon: Result<Daemon, DiscoveryError>
        do {
            let status = try AvahiDiscovery.daemonStatus()
            daemon = .success(Daemon(version: status.version, hostName: status.hostName))
        } catch {
            daemon = .failure(error)
        }
        var rooms: [String: Set<String>] = [:]
        var seen: Set<String> = []
        // Through the daemon when it runs, else through levchat's own mDNS, as `join` would.
        if let events = try? await FallbackDiscovery(logger: logger).browse() {
            let found = await withTaskGroup(of: [DiscoveredService]?.self) { group in
                group.addTask {
                    var found: [DiscoveredService] = []
                    for await event in events { if case .found(let service) = event { found.append(service) } }
                    return found
                }
                group.addTask {
                    try? await Task.sleep(for: duration)
                    return nil
                }
                _ = await group.next()
                group.cancelAll()
                var all: [DiscoveredService] = []
                for await result in group { all += result ?? [] }
                return all
            }
            for service in found {
                seen.insert(service.instanceName)
                let room = service.txt["rid"].map { String($0.prefix(8)) } ?? "unreadable"
                rooms[room, default: []].insert("\(service.hostName) \(Endpoint.format(host: service.address, port: service.port))")
            }
        }
        return Report(daemon: daemon, interfaces: interfaces(), rooms: rooms, advertisements: seen.count)
    }

    static func interfaces() -> [Interface] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var byName: [String: Interface] = [:]
        var order: [String] = []
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            let name = String(cString: current.pointee.ifa_name)
            let flags = Int32(bitPattern: current.pointee.ifa_flags)
            if byName[name] == nil {
                byName[name] = Interface(name: name, addresses: [], up: flags & Int32(IFF_UP) != 0,
                                         multicast: flags & Int32(IFF_MULTICAST) != 0)
                order.append(name)
            }
            guard let address = current.pointee.ifa_addr else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            if getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                byName[name]?.addresses.append(host.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
            }
        }
        return order.compactMap { byName[$0] }
    }
}

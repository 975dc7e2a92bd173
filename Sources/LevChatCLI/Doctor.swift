import ArgumentParser
import LevChatCore
import LevChatPeer
import Logging

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check why a room cannot be seen: avahi-daemon, network interfaces, rooms visible now, firewall.")

    @Option(help: "Seconds to listen for rooms on the network.")
    var listen: Double = 3

    func validate() throws {
        guard listen > 0 && listen <= 60 else { throw ValidationError("--listen takes seconds from 0 to 60, not \(listen)") }
    }

    func run() async throws {
        let report = await NetworkDoctor.examine(browseFor: .milliseconds(Int64(listen * 1000)), logger: Logger(label: "levchat"))
        var problems = 0
        switch report.daemon {
        case .success(let status):
            print("avahi-daemon: running (\(status.version)), this host is \(status.hostName)")
        case .failure(let error):
            problems += 1
            print("avahi-daemon: NOT AVAILABLE: \(error). Start it (sudo systemctl start avahi-daemon);")
            print("  without it, rooms are not advertised or found, but 'join CODE --peer HOST:PORT' still works.")
        }
        print("interfaces:")
        for interface in report.interfaces {
            let state = [interface.up ? "up" : "down", interface.multicast ? "multicast" : "no multicast"].joined(separator: ", ")
            print("  \(interface.name): \(state); \(interface.addresses.isEmpty ? "no address" : interface.addresses.joined(separator: " "))")
        }
        if report.usableInterfaces.isEmpty {
            problems += 1
            print("  no interface is up with multicast: mDNS cannot reach anyone")
        }
        if case .success = report.daemon {
            print("rooms visible now (\(report.advertisements) advertisement\(report.advertisements == 1 ? "" : "s") in \(listen) s):")
            if report.rooms.isEmpty { print("  none") }
            for (room, hosts) in report.rooms.sorted(by: { $0.key < $1.key }) {
                print(DisplayText.sanitize("  room \(room)…: \(hosts.sorted().joined(separator: "; "))"))  // names from the LAN
            }
        }
        print("firewall: allow UDP 5353 in and out (mDNS, multicast 224.0.0.251 and ff02::fb), and the room's")
        print("  TCP port (printed by 'create'; fix it with --port) on the host and on every member (any member may become host).")
        if case .failure = report.daemon { throw ExitCode(71) }
        if problems > 0 { throw ExitCode(69) }
    }
}

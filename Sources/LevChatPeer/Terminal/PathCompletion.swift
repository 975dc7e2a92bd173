#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LevChatCore

/// The paths Tab offers after `/send` (the line editor is pure; this reads the directory): the
/// entries of the folder typed so far whose names begin with the rest, folders with a `/`.
/// Hidden entries only when a `.` is typed; names that would need escaping on the screen never.
enum PathCompletion {
    static func candidates(_ typed: String) -> [String] {
        let slash = typed.lastIndex(of: "/")
        let folderPart = slash.map { String(typed[...$0]) } ?? ""
        let base = slash.map { String(typed[typed.index(after: $0)...]) } ?? typed
        let folder = folderPart.isEmpty ? "." : FileDesk.expand(folderPart)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        return names.filter { $0.hasPrefix(base) && (base.hasPrefix(".") || !$0.hasPrefix(".")) && ScreenText(escaping: $0).rendered == $0 }
            .sorted()
            .prefix(200)
            .map { name in
                folderPart + name + (FileDesk.isFolder(folder + "/" + name) == true ? "/" : "")
            }
    }
}

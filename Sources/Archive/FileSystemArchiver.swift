import DiskImage
import FileSystems

/// What archiving a filesystem wrote and what it could not.
public struct ArchiveReport: Sendable {
    /// Members written (the root included).
    public var members = 0
    /// Regular files, hardlink members and bytes of file content written.
    public var files = 0
    public var hardlinks = 0
    public var contentBytes: UInt64 = 0
    /// Everything skipped or written with a loss, in walk order: walk problems (unreadable
    /// entries), sockets, short files, unwritable xattr names.
    public var problems: [ArchiveProblem] = []

    public init() {}
}

/// Writes a whole filesystem (or a subtree) as tar members in `TreeWalk` order.
///
/// Hardlinks: for an inode with a link count above 1, the first path met in walk order is
/// written as a file and every later path as a link member ('1') naming it.
public enum FileSystemArchiver {
    public static func archive(_ reader: any FileSystemReader, into tar: TarWriter) throws -> ArchiveReport {
        var report = ArchiveReport()
        var walk = TreeWalk(reader)
        var firstPath: [UInt64: [UInt8]] = [:]
        var reportedWalkProblems = 0
        var reportedTarProblems = tar.problems.count
        // Problems in walk order: the writer's (about the previous entry), then the walk's.
        func collect(_ walk: TreeWalk) {
            report.problems += tar.problems.dropFirst(reportedTarProblems)
            reportedTarProblems = tar.problems.count
            for p in walk.problems.dropFirst(reportedWalkProblems) {
                report.problems.append(ArchiveProblem(path: p.path, message: p.error.message))
            }
            reportedWalkProblems = walk.problems.count
        }

        while let item = walk.next() {
            collect(walk)

            let m = item.metadata
            if m.type == .socket {
                report.problems.append(ArchiveProblem(path: item.displayPath, message: "socket: not representable in tar; skipped"))
                continue
            }
            var entry: TarEntry
            do {
                entry = try TarEntry(path: item.path, metadata: m)
            } catch let e as FWError {
                report.problems.append(ArchiveProblem(path: item.displayPath, message: e.message))
                continue
            }
            let linkable = m.type != .directory && m.linkCount > 1
            let target = linkable ? firstPath[m.inode] : nil
            if linkable, target == nil { firstPath[m.inode] = item.path }
            switch try tar.appendMember(entry, inode: m.inode, reader: reader, hardlinkTarget: target) {
            case .hardlink: report.hardlinks += 1
            case .file:
                report.files += 1
                report.contentBytes += m.size
            case .other: break
            }
            report.members += 1
        }
        collect(walk)
        return report
    }
}

/// A stream of zeros: the contents of a file that could not be opened (still written, so that
/// hardlinks to it stay valid).
public final class ZeroContents: FileContents {
    public let size: UInt64
    private var left: UInt64

    public init(size: UInt64) {
        self.size = size
        self.left = size
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = Int(min(UInt64(buffer.count), left))
        if n > 0 { UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]).initializeMemory(as: UInt8.self, repeating: 0) }
        left -= UInt64(n)
        return n
    }
}

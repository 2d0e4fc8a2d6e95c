import DiskImage
import DockerState
import FileSystems
import Foundation

/// `diff`: two disks' trees (the booted namespaces, or one partition of each) compared entry by
/// entry, and their Docker inventories. JSON keys: the tree keys (`BrowseRequest`: disk,
/// backing_dir, snapshot, no_replay, root, partition; the same for both disks), `other` (the
/// second disk), `path` (where to start, default "/"), `no_content`.
public struct DiffRequest: Sendable, Equatable, Codable, FlatRequest {
    /// The first disk and how both are read.
    public var tree = BrowseRequest()
    /// The second disk (the CLI's IMAGE_B).
    public var other: String?
    /// Where both walks start (default "/").
    public var path: String?
    /// `--no-content`: compare metadata only, not the SHA-256 of files whose size is the same.
    public var noContent = false

    public init(tree: BrowseRequest = BrowseRequest(), other: String? = nil, path: String? = nil, noContent: Bool = false) {
        self.tree = tree
        self.other = other
        self.path = path
        self.noContent = noContent
    }

    public init() { self.init(tree: BrowseRequest()) }

    static let job = "diff"

    enum CodingKeys: String, CodingKey, CaseIterable { case other, path, noContent = "no_content" }

    public static let keys = BrowseRequest.keys.union(CodingKeys.allCases.map(\.rawValue))

    mutating func fields(_ f: RequestFields<CodingKeys>) throws {
        try f.optional(&other, .other)
        try f.optional(&path, .path)
        try f.value(&noContent, .noContent)
    }

    mutating func groups(_ g: RequestGroups) throws {
        try g.code(&tree)
    }

    public static func decode(_ json: [UInt8]) throws -> DiffRequest { try RequestKeys.decode(json) }

    /// The second disk's request: the first's options with `other` as its disk.
    var otherTree: BrowseRequest {
        var r = tree
        r.source.disk = other
        return r
    }
}

/// One difference (`diff --json` prints one per line): an entry's `path`, or for Docker the
/// data-root's path with `docker` ("image" or "container") and `name`; `change` is added,
/// removed or changed; `fields` the fields that changed (type, mode, uid, gid, size, mtime,
/// link, device, xattrs, hardlink, content; for Docker the inventory's keys).
public struct TreeChange: Sendable, Equatable, Encodable {
    public enum Kind: String, Sendable, Encodable { case added, removed, changed }
    public var path: String
    public var change: Kind
    public var fields: [String]
    public var docker: String?
    public var name: String?

    public init(path: String, change: Kind, fields: [String] = [], docker: String? = nil, name: String? = nil) {
        (self.path, self.change, self.fields, self.docker, self.name) = (path, change, fields, docker, name)
    }

    /// One JSON line (sorted keys).
    public func json() throws -> String { try JSONText.line(self) }

    /// As the CLI prints it: "changed /etc/hostname: mtime, content".
    public var text: String {
        let what = docker.map { "docker \($0) \(name ?? "") in \(path)" } ?? path
        return "\(change.rawValue) \(what)" + (fields.isEmpty ? "" : ": " + fields.joined(separator: ", "))
    }
}

/// The differences of two walks, merged like a join over their common order (depth first, names
/// sorted bytewise): memory stays bounded by the two walks' open directories.
public struct TreeDiff: Sequence, IteratorProtocol {
    private var a: DeviceTree.Walk
    private var b: DeviceTree.Walk
    private var nextA: AssembledEntry?
    private var nextB: AssembledEntry?
    private let content: Bool
    /// A file whose contents could not be hashed: the comparison of that entry is incomplete.
    public private(set) var readProblems: [RunWarning] = []
    /// What the reads of the hashed files met without stopping (a btrfs data checksum
    /// mismatch: the bytes compared as stored), of the first tree's files and of the second's.
    public private(set) var contentWarnings: (a: [RunWarning], b: [RunWarning]) = ([], [])

    init(_ a: DeviceTree.Walk, _ b: DeviceTree.Walk, content: Bool) {
        (self.a, self.b, self.content) = (a, b, content)
        nextA = self.a.next()
        nextB = self.b.next()
    }

    /// Entries either walk could not read, then the files that could not be hashed.
    public var problems: [RunWarning] { a.problems + b.problems + readProblems }

    public mutating func next() -> TreeChange? {
        while true {
            switch (nextA, nextB) {
            case (nil, nil):
                return nil
            case (let ea?, nil):
                nextA = a.next()
                return TreeChange(path: ea.path, change: .removed)
            case (nil, let eb?):
                nextB = b.next()
                return TreeChange(path: eb.path, change: .added)
            case (let ea?, let eb?):
                switch Self.order(ea.rawPath, eb.rawPath) {
                case .orderedAscending:
                    nextA = a.next()
                    return TreeChange(path: ea.path, change: .removed)
                case .orderedDescending:
                    nextB = b.next()
                    return TreeChange(path: eb.path, change: .added)
                case .orderedSame:
                    nextA = a.next()
                    nextB = b.next()
                    let fields = changedFields(ea, eb)
                    if !fields.isEmpty { return TreeChange(path: ea.path, change: .changed, fields: fields) }
                }
            }
        }
    }

    /// Walk order of two paths below the root: component by component, bytewise.
    static func order(_ x: [UInt8], _ y: [UInt8]) -> ComparisonResult {
        var i = x.startIndex, j = y.startIndex
        while i < x.endIndex, j < y.endIndex {
            let cx = x[i], cy = y[j]
            if cx == cy { i += 1; j += 1; continue }
            // A separator ends a component: the shorter component comes first.
            if cx == 0x2F { return .orderedAscending }
            if cy == 0x2F { return .orderedDescending }
            return cx < cy ? .orderedAscending : .orderedDescending
        }
        if i == x.endIndex, j == y.endIndex { return .orderedSame }
        return i == x.endIndex ? .orderedAscending : .orderedDescending
    }

    /// The fields that differ; a directory's size (its on-disk listing's) is not compared.
    private mutating func changedFields(_ x: AssembledEntry, _ y: AssembledEntry) -> [String] {
        let m = x.metadata, n = y.metadata
        var fields: [String] = []
        if m.type != n.type { fields.append("type") }
        if m.permissions & 0o7777 != n.permissions & 0o7777 { fields.append("mode") }
        if m.uid != n.uid { fields.append("uid") }
        if m.gid != n.gid { fields.append("gid") }
        if m.type == .regular, n.type == .regular, m.size != n.size { fields.append("size") }
        if m.mtime != n.mtime { fields.append("mtime") }
        if m.symlinkTarget != n.symlinkTarget { fields.append("link") }
        if m.device != n.device { fields.append("device") }
        if m.xattrs != n.xattrs { fields.append("xattrs") }
        if x.hardlinkTarget != y.hardlinkTarget { fields.append("hardlink") }
        if content, m.type == .regular, n.type == .regular {
            if m.size != n.size {
                fields.append("content")
            } else if let hx = digest(x, ofFirst: true), let hy = digest(y, ofFirst: false), hx != hy {
                fields.append("content")
            }
        }
        return fields
    }

    /// The SHA-256 of a regular file's bytes; nil (and a problem) when it cannot be read. What
    /// the read warns of goes to `contentWarnings` on the entry's side.
    private mutating func digest(_ entry: AssembledEntry, ofFirst: Bool) -> [UInt8]? {
        do {
            var hash = SHA256()
            let file = try entry.openContents()
            try file.forEachChunk { hash.update($0) }
            let warnings = file.warnings.map { RunWarning(code: .readError, place: entry.path, message: $0) }
            if ofFirst { contentWarnings.a += warnings } else { contentWarnings.b += warnings }
            return hash.finalize()
        } catch {
            readProblems.append(RunWarning(code: .readError, place: entry.path, message: FWError(error).description))
            return nil
        }
    }
}

extension DeviceTree {
    /// The differences from this tree to `other` below `path` (both walked from it), streamed.
    public func compare(to other: DeviceTree, path: String = "/", content: Bool = true) throws -> TreeDiff {
        TreeDiff(try walk(path), try other.walk(path), content: content)
    }

    /// The Docker inventory of a booted namespace (nil for one partition's filesystem).
    public func docker() -> DockerReport? {
        booted.map { DataRootLocator.report(for: $0.namespace, binds: $0.binds) }
    }
}

/// What a whole `diff` found: how many differences, and the problems that left the comparison
/// incomplete (entries or files that could not be read: the CLI's exit status 2).
public struct DiffSummary: Sendable, Encodable {
    public var differences: Int
    public var problems: [RunWarning]
    /// Problems that did not affect the comparison (mounts not applied, Docker notes), each
    /// placed on its disk.
    public var warnings: [RunWarning]
}

extension Disk {
    /// Compares the trees `request` names (its disk and `other`, opened with the same options),
    /// handing each difference to `each` as it is found: the entries first, in walk order, then
    /// the Docker inventories (images by id, containers by name, per data-root).
    public static func diff(_ request: DiffRequest, each: (TreeChange) throws -> Void) throws -> DiffSummary {
        guard let other = request.other, !other.isEmpty else { throw FWError(.invalidArgument, "diff needs a second disk") }
        try request.tree.validate()
        return try request.tree.source.open().diff(against: try request.otherTree.source.open(), request, each: each)
    }

    /// `diff(_:each:)` of this disk against `other`, both already open (`request`'s disks are
    /// not read; its other options are).
    public func diff(against other: Disk, _ request: DiffRequest, each: (TreeChange) throws -> Void) throws -> DiffSummary {
        let a = try tree(request.tree)
        let b = try other.tree(request.tree)
        var changes = try a.compare(to: b, path: request.path ?? "/", content: !request.noContent)
        var count = 0
        while let change = changes.next() {
            count += 1
            try each(change)
        }
        var warnings = Self.placed(a.warnings + changes.contentWarnings.a, on: a) + Self.placed(b.warnings + changes.contentWarnings.b, on: b)
        if request.path ?? "/" == "/", let da = a.docker(), let db = b.docker() {
            for change in DockerInventoryDiff.changes(da, db) {
                count += 1
                try each(change)
            }
            warnings += da.problems.map { RunWarning(code: .docker, place: a.name, message: $0) }
                + db.problems.map { RunWarning(code: .docker, place: b.name, message: $0) }
        }
        return DiffSummary(differences: count, problems: changes.problems, warnings: warnings)
    }
}

extension Disk {
    /// Warnings of one side of a diff, each placed on its tree ("disk.img booted namespace: /x").
    static func placed(_ warnings: [RunWarning], on tree: DeviceTree) -> [RunWarning] {
        warnings.map { RunWarning(code: $0.code, place: tree.name + ($0.place.map { ": " + $0 } ?? ""), message: $0.message) }
    }
}

/// The Docker part of `diff`: per data-root (by path), images matched by id and containers by
/// name; a data-root only one disk has gives all its images and containers as added or removed.
enum DockerInventoryDiff {
    static let imageFields: [(String, @Sendable (ImageInfo, ImageInfo) -> Bool)] = [
        ("tags", { $0.tags.sorted() == $1.tags.sorted() }), ("created", { $0.created == $1.created }),
        ("layers", { $0.layers == $1.layers }), ("size", { $0.size == $1.size }), ("diff_ids", { $0.diffIDs == $1.diffIDs }),
        ("cmd", { $0.cmd == $1.cmd }), ("entrypoint", { $0.entrypoint == $1.entrypoint }),
    ]
    static let containerFields: [(String, @Sendable (ContainerInfo, ContainerInfo) -> Bool)] = [
        ("id", { $0.id == $1.id }), ("image", { $0.image == $1.image }), ("image_tag", { $0.imageTag == $1.imageTag }),
        ("state", { $0.state == $1.state }), ("exit_code", { $0.exitCode == $1.exitCode }),
        ("started_at", { $0.startedAt == $1.startedAt }), ("finished_at", { $0.finishedAt == $1.finishedAt }),
        ("restart_count", { $0.restartCount == $1.restartCount }), ("restart_policy", { $0.restartPolicy == $1.restartPolicy }),
        ("cmd", { $0.cmd == $1.cmd }), ("labels", { $0.labels == $1.labels }),
    ]

    static func changes(_ a: DockerReport, _ b: DockerReport) -> [TreeChange] {
        let rootsA = Dictionary(a.dataRoots.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        let rootsB = Dictionary(b.dataRoots.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        var result: [TreeChange] = []
        for path in Set(rootsA.keys).union(rootsB.keys).sorted() {
            let ra = rootsA[path], rb = rootsB[path]
            result += compare(ra?.images ?? [], rb?.images ?? [], key: \.id, fields: imageFields, kind: "image", path: path) { $0.tags.first ?? $0.id }
            result += compare(ra?.containers ?? [], rb?.containers ?? [], key: \.name, fields: containerFields, kind: "container", path: path) { $0.name }
        }
        return result
    }

    private static func compare<T>(_ xs: [T], _ ys: [T], key: KeyPath<T, String>, fields: [(String, @Sendable (T, T) -> Bool)],
                                   kind: String, path: String, name: (T) -> String) -> [TreeChange] {
        let byA = Dictionary(xs.map { ($0[keyPath: key], $0) }, uniquingKeysWith: { x, _ in x })
        let byB = Dictionary(ys.map { ($0[keyPath: key], $0) }, uniquingKeysWith: { x, _ in x })
        var result: [TreeChange] = []
        for k in Set(byA.keys).union(byB.keys).sorted() {
            switch (byA[k], byB[k]) {
            case (let x?, nil): result.append(TreeChange(path: path, change: .removed, docker: kind, name: name(x)))
            case (nil, let y?): result.append(TreeChange(path: path, change: .added, docker: kind, name: name(y)))
            case (let x?, let y?):
                let changed = fields.filter { !$0.1(x, y) }.map(\.0)
                if !changed.isEmpty { result.append(TreeChange(path: path, change: .changed, fields: changed, docker: kind, name: name(y))) }
            case (nil, nil): break
            }
        }
        return result
    }
}

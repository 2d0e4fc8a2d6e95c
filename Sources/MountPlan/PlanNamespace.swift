import Assembly
import DiskImage
import FileSystems

extension NamespaceFileSystem {
    /// Directories penguin adds itself: the image's own copies are left out of the booted walk.
    public static let penguinDirectories: [NamespacePath: String] = [
        NamespacePath("/igloo"): "penguin adds this directory itself; the image's own copy is left out",
        NamespacePath("/nix"): "penguin adds this directory itself; the image's own copy is left out",
    ]

    /// The namespace a plan builds: its mounts applied in order. `open` opens the filesystem of a
    /// partition mount (nil when the partition has none); a root that cannot be opened throws,
    /// any later mount that fails is noted in `problems` and left out.
    public convenience init(plan: Plan, name: String = "namespace", open: (PlannedMount) throws -> (any FileSystemReader)?) throws {
        self.init(name: name)
        for (index, m) in plan.mounts.enumerated() {
            do {
                try apply(m, open: open)
            } catch {
                if index == 0 { throw error }
                note(m.where, "partition \(m.partition ?? 0): \(FWError(error).description); not mounted")
            }
        }
        guard rootMountedFirst else {
            throw FWError(.notFound, "the plan has no root mount")
        }
    }

    /// Applies one planned mount. Throws when a partition's filesystem cannot be opened or its
    /// root read; everything else that keeps a mount from applying is noted in `problems`.
    public func apply(_ m: PlannedMount, open: (PlannedMount) throws -> (any FileSystemReader)?) throws {
        let at = NamespacePath(m.where)
        switch m.kind {
        case .partition:
            guard let number = m.partition else { return }
            guard let reader = try open(m) else {
                note(m.where, "partition \(number)\(m.offset.map { " at offset \($0)" } ?? "") has no readable filesystem; not mounted")
                return
            }
            try mount(reader, at: at, origin: "partition \(number)")
        case .bind:
            guard let what = m.what else { return }
            bind(NamespacePath(what), at: at, sourceText: what, origin: m.where)
        case .overlay:
            let layers = ([m.upper].compactMap { $0 } + (m.lower ?? [])).map { (path: NamespacePath($0), text: $0) }
            overlay(layers, at: at, origin: m.partition.map { "partition \($0)" } ?? m.where)
        }
    }

    /// The walk of a booted namespace in archive order (penguin's own directories left out).
    public func bootedWalk() -> TreeWalk {
        TreeWalk(self, excluding: Self.penguinDirectories)
    }
}

// The external images a Containerfile builds from: FROM lines (after --platform flags, with
// `AS name` stages and the ARGs declared before the first FROM, which build args override) and
// COPY --from=<image>. Stage names and `scratch` are not images. dockerfile-ast does the lexing
// (continuations, comments, the escape directive); only ARG expansion is done here.

import { DockerfileParser } from 'dockerfile-ast';

export interface ImageRefs {
  /** Fully expanded references, in order of first use, without duplicates. */
  refs: string[];
  /**
   * References that cannot be known before the build, as written: they use the per-arch
   * automatic ARGs (TARGETARCH, ...) or an expansion form this parser does not follow.
   */
  unexpanded: string[];
}

/** The ARGs buildah/BuildKit define per platform; a ref using them differs per arch. */
const PLATFORM_ARGS = new Set(
  ['TARGET', 'BUILD'].flatMap((p) => ['PLATFORM', 'OS', 'ARCH', 'VARIANT'].map((s) => p + s)),
);

const VAR = /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Expands $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word}; undefined if it cannot. */
export function expandArgs(text: string, values: ReadonlyMap<string, string>): string | undefined {
  let failed = false;
  const out = text.replace(VAR, (_whole, braced: string | undefined, op: string | undefined, word: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    if (PLATFORM_ARGS.has(name)) failed = true;
    const value = values.get(name) ?? '';
    if (op === ':-') return value !== '' ? value : (expandArgs(word ?? '', values) ?? ((failed = true), ''));
    if (op === ':+') return value !== '' ? (expandArgs(word ?? '', values) ?? ((failed = true), '')) : '';
    return value;
  });
  // Anything still starting with $ is a form not handled above (${x#y}, ${x/y/z}, ...).
  return failed || out.includes('$') ? undefined : out;
}

export function imageRefs(containerfile: string, buildArgs: Record<string, string>): ImageRefs {
  const df = DockerfileParser.parse(containerfile);
  // Only ARGs declared before the first FROM reach FROM lines; a build arg overrides the default.
  const meta = new Map<string, string>();
  for (const arg of df.getInitialARGs()) {
    const prop = arg.getProperty();
    if (!prop) continue;
    const name = prop.getName();
    const value = Object.hasOwn(buildArgs, name) ? buildArgs[name] : prop.getValue();
    meta.set(name, value ?? '');
  }

  const stages = new Set<string>();
  const refs: string[] = [];
  const unexpanded: string[] = [];
  const add = (raw: string) => {
    const ref = expandArgs(raw, meta);
    if (ref === undefined) {
      if (!unexpanded.includes(raw)) unexpanded.push(raw);
      return;
    }
    if (ref === '' || ref.toLowerCase() === 'scratch' || stages.has(ref.toLowerCase())) return;
    if (!refs.includes(ref)) refs.push(ref);
  };

  for (const from of df.getFROMs()) {
    const image = from.getImage();
    if (image) add(image);
    const stage = from.getBuildStage();
    if (stage) stages.add(stage.toLowerCase());
  }
  for (const copy of df.getCOPYs()) {
    const value = copy.getFromFlag()?.getValue();
    // A stage by name or index, or an image; stage-scoped ARGs in --from are not followed.
    if (!value || /^\d+$/.test(value) || stages.has(value.toLowerCase())) continue;
    if (value.includes('$')) {
      if (!unexpanded.includes(value)) unexpanded.push(value);
    } else add(value);
  }
  return { refs, unexpanded };
}

// A Label Studio project's labeling config (its XML) read for the one question asm-fer can answer: a single-choice
// <Choices> about an <Image>, and how each of its choices maps onto the served model's classes.

/** The single-choice image question of a project, with each choice's model class. */
export interface ChoiceQuestion {
  /** The <Choices> tag's name: `from_name` of results. */
  fromName: string;
  /** The <Image> tag's name: `to_name` of results. */
  toName: string;
  /** The task data key holding the image URL (the Image tag's value without its `$`). */
  dataKey: string;
  /** Choice value as results carry it → model class. */
  classOf: Record<string, string>;
  /** Model class → the choice value that stands for it (classes without a choice are absent). */
  choiceOf: Record<string, string>;
}

/** The config has no question asm-fer can audit, or its choices do not map onto the model's classes. */
export class LabelConfigError extends Error {
  override name = 'LabelConfigError';
  constructor(
    message: string,
    /** The choices that map onto no class, when that is the reason. */
    readonly unmapped: readonly string[] = [],
  ) {
    super(message);
  }
}

interface Tag {
  name: string;
  attrs: Record<string, string>;
  /** Index of the enclosing open tag in the list, or -1 at the top. */
  parent: number;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

/**
 * The element tags of `xml` in document order with their attributes and parents. Label configs are small, flat XML
 * written by people in Label Studio's editor: comments, CDATA (style blocks) and processing instructions are skipped,
 * and only tags and attributes matter, so a scanner suffices where a full parser would be a new dependency.
 */
export function scanTags(xml: string): Tag[] {
  const text = xml.replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '').replace(/<\?[\s\S]*?\?>/g, '');
  const tags: Tag[] = [];
  const open: number[] = [];
  for (const m of text.matchAll(/<(\/?)([A-Za-z][\w.-]*)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/g)) {
    const [, closing, name, rawAttrs, selfClosing] = m as unknown as [string, string, string, string, string];
    if (closing) {
      // Pop up to the matching open tag; unbalanced closers are ignored rather than fatal.
      let at = open.length - 1;
      while (at >= 0 && tags[open[at] as number]?.name !== name) at--;
      if (at >= 0) open.length = at;
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of rawAttrs.matchAll(/([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) attrs[a[1] as string] = unescapeXml(a[2] ?? a[3] ?? '');
    tags.push({ name, attrs, parent: open.at(-1) ?? -1 });
    if (!selfClosing) open.push(tags.length - 1);
  }
  return tags;
}

/** Label Studio's default for `choice` is single; "single-radio" is single too (radio buttons). */
const isSingle = (t: Tag) => (t.attrs.choice ?? 'single').startsWith('single');

/**
 * The project's single-choice image question, its choices mapped onto `classes`: by `mapping` (choice → class: the
 * project's own label map, else ASM_FER_LABEL_STUDIO_LABEL_MAP) first, else by name ignoring case. Throws LabelConfigError naming what is wrong: no
 * image, no single-choice question about one, several such questions, or choices that map onto no class.
 */
export function choiceQuestion(xml: string, classes: readonly string[], mapping: Readonly<Record<string, string>> = {}): ChoiceQuestion {
  const tags = scanTags(xml);
  const images = new Map(tags.filter((t) => t.name === 'Image' && t.attrs.name).map((t) => [t.attrs.name as string, t]));
  if (images.size === 0) throw new LabelConfigError('the labeling config has no <Image> tag; asm-fer audits choices about face images');
  const questions = tags.filter((t) => t.name === 'Choices' && images.has(t.attrs.toName ?? ''));
  const single = questions.filter(isSingle);
  if (single.length === 0) {
    throw new LabelConfigError(
      questions.length > 0
        ? `the labeling config's <Choices> about an image allow several choices (choice="multiple"); asm-fer audits one expression per face: set choice="single"`
        : 'the labeling config has no <Choices> tag whose toName is an <Image>; asm-fer audits a single choice of expression per face image',
    );
  }
  if (single.length > 1) {
    throw new LabelConfigError(`the labeling config has ${single.length} single-choice image questions (${single.map((q) => q.attrs.name).join(', ')}); asm-fer audits exactly one`);
  }
  const q = single[0] as Tag;
  const at = tags.indexOf(q);
  // Choice tags anywhere under this Choices (Label Studio allows grouping them in <View>s).
  const under = (i: number): boolean => i === at || (i >= 0 && under(tags[i]?.parent ?? -1));
  const choices = tags.filter((t, i) => t.name === 'Choice' && under(t.parent) && i > at).map((t) => t.attrs.alias ?? t.attrs.value ?? '');
  if (choices.length === 0) throw new LabelConfigError(`the <Choices name="${q.attrs.name}"> tag lists no <Choice>`);
  const lower = new Map(classes.map((c) => [c.toLowerCase(), c]));
  const classOf: Record<string, string> = {};
  const unmapped: string[] = [];
  for (const choice of choices) {
    const c = mapping[choice] ?? lower.get(choice.toLowerCase());
    if (c !== undefined && classes.includes(c)) classOf[choice] = c;
    else unmapped.push(choice);
  }
  if (unmapped.length > 0) {
    throw new LabelConfigError(
      `choice(s) ${unmapped.map((c) => JSON.stringify(c)).join(', ')} of <Choices name="${q.attrs.name}"> map onto none of the model's classes (${classes.join(', ')}); rename them, or map them for this project (PUT /label-studio/projects/<id>/label-map {"Choice": "class"}) or for every project (ASM_FER_LABEL_STUDIO_LABEL_MAP="Choice=class,...")`,
      unmapped,
    );
  }
  const image = images.get(q.attrs.toName as string) as Tag;
  const value = image.attrs.value ?? '';
  if (!value.startsWith('$')) throw new LabelConfigError(`<Image name="${image.attrs.name}"> takes its URL from value="${value}"; expected a task field such as value="$image"`);
  const choiceOf: Record<string, string> = {};
  for (const [choice, c] of Object.entries(classOf)) choiceOf[c] ??= choice;
  return { fromName: q.attrs.name as string, toName: image.attrs.name as string, dataKey: value.slice(1), classOf, choiceOf };
}

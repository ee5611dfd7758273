import { describe, expect, it } from 'vitest';
import { choiceQuestion, LabelConfigError } from '../../src/label-studio/label-config.js';
import { FERPLUS_CHOICES, ferplusConfig } from './fake-label-studio.js';

const CLASSES = FERPLUS_CHOICES;

describe('choiceQuestion', () => {
  it('finds the single-choice image question and maps FER+ choices onto the classes by name', () => {
    const q = choiceQuestion(ferplusConfig(), CLASSES);
    expect(q).toMatchObject({ fromName: 'expression', toName: 'image', dataKey: 'image' });
    expect(Object.values(q.classOf).sort()).toEqual([...CLASSES].sort());
    expect(q.choiceOf.happiness).toBe('happiness');
  });

  it('matches names ignoring case and applies the configured map first', () => {
    const q = choiceQuestion(ferplusConfig(['Neutral', 'Happy', 'Sad']), CLASSES, { Happy: 'happiness', Sad: 'sadness' });
    expect(q.classOf).toEqual({ Neutral: 'neutral', Happy: 'happiness', Sad: 'sadness' });
    expect(q.choiceOf).toEqual({ neutral: 'Neutral', happiness: 'Happy', sadness: 'Sad' });
  });

  it('refuses choices that map onto no class, naming each of them', () => {
    let err: unknown;
    try {
      choiceQuestion(ferplusConfig(['happiness', 'Joy', 'Boredom']), CLASSES);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LabelConfigError);
    expect((err as LabelConfigError).unmapped).toEqual(['Joy', 'Boredom']);
    expect((err as Error).message).toMatch(/"Joy", "Boredom".*ASM_FER_LABEL_STUDIO_LABEL_MAP/);
  });

  it('reads aliases, entities, comments and choices grouped in views', () => {
    const xml = `<View><!-- <Choices name="old" toName="image"/> -->
      <Image name="img" value="$photo" zoom="true"/>
      <Choices name="emo" toName="img"><View><Choice value="Happy &amp; glad" alias="happiness"/></View><Choice value='fear'/></Choices>
    </View>`;
    const q = choiceQuestion(xml, CLASSES);
    expect(q).toMatchObject({ fromName: 'emo', toName: 'img', dataKey: 'photo', classOf: { happiness: 'happiness', fear: 'fear' } });
  });

  it.each([
    ['no image', '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="fear"/></Choices></View>', /no <Image>/],
    ['no choices about the image', '<View><Image name="i" value="$image"/><TextArea name="n" toName="i"/></View>', /no <Choices> tag whose toName is an <Image>/],
    ['multiple choice', '<View><Image name="i" value="$image"/><Choices name="c" toName="i" choice="multiple"><Choice value="fear"/></Choices></View>', /choice="single"/],
    [
      'two questions',
      '<View><Image name="i" value="$image"/><Choices name="a" toName="i"><Choice value="fear"/></Choices><Choices name="b" toName="i"><Choice value="fear"/></Choices></View>',
      /2 single-choice image questions \(a, b\)/,
    ],
  ])('refuses a config with %s', (_name, xml, message) => {
    expect(() => choiceQuestion(xml, CLASSES)).toThrow(message);
  });
});
